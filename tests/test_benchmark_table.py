"""The benchmark table's ratios compare like with like: equal resolution and equal dtype."""

from __future__ import annotations

from benchmarks.run import markdown_table


def test_ratios_divide_by_the_reference_of_the_same_dtype():
    rss = {"peak_rss_mb": 1.0}
    results = {"date": "d", "machine": "m", "width": 64, "items": {
        "peak fp32": {"gflops": 100.0}, "peak bf16": {"gflops": 400.0},
        "render nvlabs-spade 256 b4 fp32": {"images_per_s": 1.0, **rss},
        "render nvlabs-spade 256 b4 bf16": {"images_per_s": 3.0, **rss},
        "render drgan 256 b4 fp32": {"images_per_s": 6.0, **rss},
        "render drgan 256 b4 bf16": {"images_per_s": 15.0, **rss},
        "render drgan 256 b4 fp32 cl": {"images_per_s": 7.0, **rss},
        "train nvlabs-spade 256 b2 bf16": {"train_images_per_s": 0.5, "train_s_per_image": 2.0, **rss},
        "train drgan 256 b2 bf16": {"train_images_per_s": 2.0, "train_s_per_image": 0.5, **rss},
    }}
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in markdown_table(results).splitlines()
            if line.startswith("| render") or line.startswith("| train")}
    assert rows["render drgan 256 b4 bf16"][2:4] == ["5.00x", "2.50x"]  # 15 / 3 (bf16 reference), 15 / 6 (own fp32)
    assert rows["render drgan 256 b4 fp32"][2:4] == ["6.00x", ""]
    assert rows["render drgan 256 b4 fp32 cl"][2] == "7.00x"
    assert rows["train drgan 256 b2 bf16"][2] == "4.00x"  # no fp32 row: no bf16 gain
    assert rows["train drgan 256 b2 bf16"][3] == ""
