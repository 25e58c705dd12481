import pytest


def tiny_vit(img_size: int = 32, patch_size: int = 4, depth: int = 4, embed_dim: int = 32, num_heads: int = 2,
             num_classes: int = 10, seed: int = 0) -> "VisionTransformer":
    """A randomly initialised ViT small enough for unit tests: (32/4)^2 + 1 = 65 tokens by default."""
    import torch  # here, not at the top: the device-side suite (tests/device, Python 3.8) runs without torch
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    return VisionTransformer(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                             num_heads=num_heads, num_classes=num_classes).eval()


@pytest.fixture
def vit():
    return tiny_vit()


# --- network-dependent tests: marked, and listed in the summary when they skip --------------------------------------
# Tests that fetch from the package registry get the `network` mark here when they reach it through a fixture of
# another module (the TensorRT bindings wheels, pycuda's sdist), besides those marked in their own files.
NETWORK_FIXTURES = {("test_api_conformance.py", "surface"), ("test_pycuda_conformance.py", "pycuda_api")}
_network_skips: list = []


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.name if hasattr(item, "path") else item.fspath.basename
        if any((module, name) in NETWORK_FIXTURES for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.network)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("network") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if reason.startswith("Skipped: "):  # no str.removeprefix: the device suite runs this file on Python 3.8
            reason = reason[len("Skipped: "):]
        _network_skips.append((item.nodeid, reason))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Skipped network tests are not silence: one section naming each and why, so a green run without the registry
    says what it did not check."""
    if not _network_skips:
        return
    terminalreporter.write_sep("=", f"{len(_network_skips)} network-dependent tests SKIPPED (not checked)",
                               yellow=True, bold=True)
    for nodeid, reason in _network_skips:
        terminalreporter.write_line(f"NETWORK SKIP {nodeid}: {reason}", yellow=True)
