import hashlib

from tdm_edge.provenance import describe_weights, has_random_weights, warn_if_random, weights_record


def test_weights_record_hashes_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"abc" * 1000)
    record = weights_record(path)
    assert record == {"file": "w.safetensors", "sha256": hashlib.sha256(b"abc" * 1000).hexdigest()}
    assert not has_random_weights({"weights": record})
    assert describe_weights({"weights": record}).startswith("w.safetensors (sha256 ")


def test_random_weights_warn_once(capsys):
    assert weights_record(None) == "random"
    assert warn_if_random({"weights": "random"}, "build")
    assert warn_if_random({}, "run")  # an export without the record is treated as untrained
    assert not warn_if_random({"weights": {"file": "a", "sha256": "0" * 64}}, "run")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("tdm-edge build: warning: this model has random weights")
