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
    _mark_slow(items)
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


# --- slow tests: `make test-fast` (-m "not slow") leaves them out, `make test` runs them -----------------------------
# Measured once over the whole suite (pytest --durations, nice 10, 2 cores shared with ~8 sessions: load ~10, so
# idle times are a few times lower): every test whose setup or call took >= 3 s there. Tests marked in their own
# files (@pytest.mark.slow) need no entry. A test that uses one of SLOW_FIXTURES is slow as a whole: deselecting only
# the first user would hand the fixture's cost to the next.
SLOW_FIXTURES = {
    ("test_demo.py", "run"): "the whole demo, --quick: 243 s",
    ("test_bench_run.py", "ladder"): "a tune ladder of DeiT-T models measured on ORT: 57 s",
    ("test_plugin_graph.py", "cli_export"): "a CLI export with the merge plugin: 37 s",
    ("test_eval_onnx.py", "demo_export"): "the demo model exported twice: 10 s",
    ("conftest.py", "trained"): "tests/quantize: a tiny ViT trained, exported, images written: 69 s",
    ("test_cuda_on_cpu.py", "libs"): "the kernel built for the CPU through cudacpu: 16 s",
    ("test_pycuda_conformance.py", "pycuda_api"): "pycuda's sdist fetched and parsed: 8 s",
}
SLOW_TESTS = {  # "file::test" (every parameter) -> seconds in that run
    "tests/bench/test_bench_run.py::test_bench_measures_three_models_and_reports_consistent_ratios": 124,
    "tests/plugins/test_nvcc.py::test_nvcc_builds_for_orin_hopper_thor": 71,
    "tests/train/test_demo_model.py::test_eval_reproduces_the_model_cards_held_out_accuracy": 65,
    "tests/train/test_train.py::test_two_process_torchrun_equals_one_process_with_the_same_global_batch": 44,
    "tests/reduce/test_flops.py::test_cli_json": 24,
    "tests/reduce/test_flops.py::test_paper_numbers": 21,
    "tests/plugins/test_cuda_on_cpu.py::test_ucontext_fallback_equals_host": 23,
    "tests/export/test_export.py::test_cli_export_writes_a_verified_model": 19,
    "tests/lint/test_check_qdq.py::test_onnx_runtime_defaults_on_a_bat_graph_break_the_rules": 16,
    "tests/test_packaging.py::test_metadata_builds_with_python_3_8": 14,
    "tests/export/test_fp16.py::test_fp16_export_keeps_edges_selection_and_layer_norms_fp32": 13,
    "tests/runners/test_runners.py::test_pytorch_runner_returns_the_models_logits_and_restores_training_mode": 13,
    "tests/export/test_plugin_graph.py::test_expanded_plugin_graph_equals_pytorch_and_attributes_matter": 12,
    "tests/plugins/test_kernel_cpu.py::test_degenerate_inputs_under_asan_ubsan": 11,
    "tests/export/test_export.py::test_dynamic_batch_has_only_the_batch_dynamic": 11,
    "tests/export/test_export.py::test_metadata_records_weights_settings_channel_order_and_verification": 10,
    "tests/lint/test_check.py::test_exported_bat_model": 9,
    "tests/export/test_export.py::test_export_is_static_verified_and_carries_its_schedule": 8,
    "tests/video/test_camera_open.py::test_debian_gstreamer_opencv_hanging_open_deadline_and_ctrl_c": 8,
    "tests/test_checkpoint.py::test_create_model_loads_before_patching": 8,
    "tests/export/test_export.py::test_failed_verification_writes_nothing": 7,
    "tests/train/test_eval_onnx.py::test_bad_onnx_evaluations_are_one_line_with_exit_2": 7,
    "tests/export/test_selections.py::test_selection_outputs_equal_pytorchs_and_are_described": 7,
    "tests/device/test_commands.py::test_run_onnx_on_ort_with_and_without_the_token_map": 7,
    "tests/plugins/test_cuda_on_cpu.py::test_runtime_semantics": 7,
    "tests/reduce/test_fused.py::test_apply_switches_the_bat_stages_for_good": 6,
    "tests/reduce/test_fused.py::test_op_on_cpu_equals_the_kernel_logic": 6,
    "tests/reduce/test_fused.py::test_fused_model_through_the_cpu_kernel_equals_the_model": 6,
    "tests/test_model_catalog.py::test_flops_and_export_name_the_demo_checkpoint_by_its_record": 6,
    "tests/bench/test_ort_profile.py::test_profile_of_a_real_bat_graph_finds_its_selection_ops_as_added_work": 6,
    "tests/engine/test_build.py::test_a_real_export_builds_and_its_schedule_reaches_the_sidecar": 5,
    "tests/test_device_side.py::test_no_device_module_imports_torch_or_the_workstation_side": 5,
    "tests/device/test_commands.py::test_bench_pruned_file_against_unpruned_file": 5,
    "tests/device/test_commands.py::test_check": 5,
    "tests/reduce/test_tome.py::test_tome_equals_the_reference_algorithm": 5,
    "tests/reduce/test_patch.py::test_any_image_size_and_registered_variants": 4,
    "tests/test_cli.py::test_python_callers_may_loop_methods_over_one_keep_rate": 4,
    "tests/test_cli.py::test_a_pickled_object_checkpoint_is_one_line_without_pytorchs_advice": 4,
    "tests/lint/test_check.py::test_exported_evit_and_tome_are_clean_for_every_target": 4,
    "tests/lint/test_check.py::test_exported_bat_model_with_dynamic_batch": 4,
    "tests/export/test_export.py::test_topk_in_the_graph_has_constant_k_and_counts_match_the_schedule": 4,
    "tests/export/test_export.py::test_cli_bad_input_is_one_line_and_exit_2": 4,
    "tests/reduce/test_patch.py::test_patching_changes_no_parameter_and_keeps_deit_small_size": 4,
    "tests/export/test_plugin_graph.py::test_merge_plugin_needs_a_bat_model": 3,
    "tests/test_progress.py::test_flops_says_what_it_is_doing_before_torch_loads": 3,
    # from the -m "not slow" run that followed (load 2-5): the ones that kept it over 2 minutes
    "tests/bench/test_bench_run.py::test_tune_that_no_rung_meets_writes_nothing": 30,
    "tests/video/test_run.py::test_torch_backend_from_a_timm_name": 6,
    "tests/video/test_quantiles.py::test_summary_memory_does_not_grow_with_frames": 2,
    "tests/export/test_fp16.py::test_default_export_pins_the_decomposed_layer_norms": 2,
}


def _mark_slow(items) -> None:
    for item in items:
        module = item.path.name if hasattr(item, "path") else item.fspath.basename
        names = set(getattr(item, "fixturenames", ()))
        if item.nodeid.split("[")[0] in SLOW_TESTS or any(
                name in names and (module == where or where == "conftest.py") for where, name in SLOW_FIXTURES):
            item.add_marker(pytest.mark.slow)
