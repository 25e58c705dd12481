from tdm_edge.doctor import jetson

from .stand_ins import NVPMODEL, TEGRA_R35, TEGRA_R36, jetson_tree


def test_tegra_release_is_parsed_from_the_real_format():
    assert jetson.parse_tegra_release(TEGRA_R35) == {"l4t": "R35.4.1", "major": 35, "revision": "4.1",
                                                     "board": "t186ref"}
    assert jetson.parse_tegra_release(TEGRA_R36)["l4t"] == "R36.4.3"
    assert jetson.parse_tegra_release("Ubuntu 22.04.4 LTS") is None


def test_l4t_releases_map_to_jetpack_and_recipe():
    assert jetson.jetpack_of(35, "4.1") == "5.1.2"
    assert jetson.jetpack_of(35, "6.1") == "5.1.5"
    assert jetson.jetpack_of(36, "3.0") == "6.0"
    assert jetson.jetpack_of(36, "4.3") == "6.2"
    assert jetson.jetpack_of(36, "4.0") == "6.1"
    assert jetson.jetpack_of(36, "9.9") == "6.x"  # a later release: named by its JetPack major
    assert jetson.jetpack_of(38, "2.0") == "7.0"
    assert jetson.jetpack_of(99, "1") is None
    assert jetson.recipe_of(35, "4.1") == "jetpack-5.1.txt"
    assert jetson.recipe_of(36, "3.0") == "jetpack-6.0.txt"
    assert jetson.recipe_of(36, "4.3") == "jetpack-6.1.txt"
    assert jetson.recipe_of(38, "2.0") == "jetpack-7.txt"
    assert jetson.recipe_of(32, "7.4") is None  # JetPack 4: TensorRT 8.2, Python 3.6, not supported
    # "3" is a revision prefix of "3.0" but not of "30.1"
    assert jetson.recipe_of(36, "30.1") == "jetpack-6.1.txt"


def test_nvpmodel_output_with_a_warning_line_before_it():
    assert jetson.parse_nvpmodel(NVPMODEL) == ("MAXN", 0)
    assert jetson.parse_nvpmodel("NV Power Mode: 15W\n2\n") == ("15W", 2)
    assert jetson.parse_nvpmodel("nvpmodel: command failed") is None


def test_jetson_facts_from_a_stand_in_tree(tmp_path):
    facts = jetson.jetson_facts(str(jetson_tree(tmp_path)), NVPMODEL)
    assert facts["jetpack"] == "5.1.2" and facts["recipe"] == "jetpack-5.1.txt"
    assert facts["model"] == "NVIDIA Jetson AGX Orin Developer Kit"  # the device-tree string's NUL dropped
    assert facts["power_mode"] == "MAXN" and facts["power_mode_id"] == 0
    # GPU devfreq in Hz, cpufreq in kHz; the DLA's devfreq node is not taken for the GPU's
    assert (facts["gpu_mhz"], facts["gpu_max_mhz"], facts["cpu_mhz"], facts["cpu_max_mhz"]) == (1300, 1300, 730, 2202)
    assert jetson.clocks_line(facts) == ["GPU 1300/1300 MHz", "CPU 730/2202 MHz"]


def test_not_a_jetson(tmp_path):
    assert jetson.jetson_facts(str(tmp_path), NVPMODEL) is None


def test_nvpmodel_is_run_only_where_it_exists():
    calls = []

    class Done:
        returncode, stdout = 0, NVPMODEL

    def run(argv, **kwargs):
        calls.append(argv)
        return Done()

    assert jetson.run_nvpmodel(which=lambda name: None, run=run) is None and calls == []
    assert jetson.run_nvpmodel(which=lambda name: "/usr/sbin/nvpmodel", run=run) == NVPMODEL
    assert calls == [["/usr/sbin/nvpmodel", "-q"]]
