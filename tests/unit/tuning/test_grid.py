"""The tuning loop's grid file: points from a grid or a list, command lines filled, bad grids in one line."""

from __future__ import annotations

import pytest

from tuning.grid import GridError, command_for, load_grid, point_name

GOOD = """
server: {command: "serve --port {port} --max-num-seqs {max_num_seqs} {enable_prefix_caching}"}
url: http://127.0.0.1:8011
settings: {max_num_seqs: [4, 8], enable_prefix_caching: [true, false]}
workload: ["-u", "8", "-n", "40"]
objective: {maximize: output_throughput, subject_to: ["p99_ttft_ms<=2000"]}
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return str(path)


def test_a_grid_is_the_product_of_its_settings_and_fills_the_command(tmp_path):
    grid = load_grid(write(tmp_path, GOOD))
    assert [point_name(p) for p in grid.points] == [
        "max_num_seqs-4_enable_prefix_caching-true",
        "max_num_seqs-4_enable_prefix_caching-false",
        "max_num_seqs-8_enable_prefix_caching-true",
        "max_num_seqs-8_enable_prefix_caching-false",
    ]
    assert grid.varied == ("max_num_seqs", "enable_prefix_caching") and grid.port == 8011 and grid.repeat == 1
    assert command_for(grid.command, grid.points[1], 8011) == (
        "serve --port 8011 --max-num-seqs 4 --no-enable-prefix-caching"
    )
    assert grid.objective is not None and grid.objective.key == "output_throughput" and grid.objective.maximize
    listed = load_grid(
        write(
            tmp_path,
            GOOD.replace(
                "settings: {max_num_seqs: [4, 8], enable_prefix_caching: [true, false]}",
                "points: [{max_num_seqs: 4, enable_prefix_caching: true}]",
            ),
        )
    )
    assert listed.points == ({"max_num_seqs": 4, "enable_prefix_caching": True},) and listed.varied == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("url:", "uri: x\nurl:"), "unknown key(s) uri"),
        (("max_num_seqs: [4, 8]", "max_num_seqs: []"), "settings.max_num_seqs must be a non-empty list"),
        (("--max-num-seqs {max_num_seqs} ", ""), "setting max_num_seqs is not in server.command"),
        (
            ("{enable_prefix_caching}", "{enable_prefix_caching} {block_size}"),
            "names {block_size}, which no setting gives",
        ),
        (("maximize: output_throughput", "maximize: output_tput"), "no summary figure is called 'output_tput'"),
        (("p99_ttft_ms<=2000", "p99_ttft<=2000"), "objective.subject_to: --check: no summary figure"),
        (('server: {command: "serve', 'server: {service: vllm, command: "serve'), "server.service does not go with"),
        (("http://127.0.0.1:8011", "127.0.0.1:8011"), "url must be http://HOST:PORT"),
        (("workload:", "workers: -1\nworkload:"), "workers must be a whole number of Locust workers"),
        (
            ("workload:", "gpus: block_size\nworkload:"),
            "point max_num_seqs-4_enable_prefix_caching-true: gpus names block_size",
        ),
        (("workload:", "gpus: 0\nworkload:"), "gpus must be a number of GPUs per point"),
        (('workload: ["-u"', 'workload: ["--csv", "x", "-u"'), "workload: drop --csv"),
    ],
)
def test_a_bad_grid_is_one_line_naming_the_file(tmp_path, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(GridError) as err:
        load_grid(path)
    assert str(err.value).startswith(path) and message in str(err.value) and "\n" not in str(err.value)


def test_the_best_point_says_when_the_next_is_not_told_apart():
    from tuning.loop import apart
    from tuning.results import best_sentence

    assert apart([1.0, 2.0], [2.5, 3.0]) is True and apart([1.0, 2.6], [2.5, 3.0]) is False
    assert apart([1.0, None], [2.5, 3.0]) is None
    close = {"objective": "output_throughput", "name": "a", "value": 101.0, "next": "b", "distinguishable": False}
    assert best_sentence(close) == (
        "Best by output_throughput: a (101), not distinguishable from b (their 95% intervals overlap)."
    )
    clear = {**close, "distinguishable": True}
    assert best_sentence(clear) == "Best by output_throughput: a (101)."
