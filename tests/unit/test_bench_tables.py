"""README's benchmark tables are generated from bench/results (bench/tables.py): they must say what the JSON says."""

from bench.tables import README, mark, tables


def test_readme_benchmark_tables_match_the_results():
    text = README.read_text()
    generated = tables()
    assert set(generated) == {
        "efficiency",
        "wait",
        "idle",
        "scale",
        "first-batch",
        "activelab",
        "activelab-noisy",
        "encoders",
        "ray",
        "multilabel",
        "warm-start",
        "every-dataset",
        "validation-search",
        "why",
        "fine-tune-gain",
        "fine-tune-min-steps",
        "fine-tune-steps",
        "fine-tune-selection",
        "binary-ceiling",
        "ladder-default",
        "ladder-default-test",
        "ladder-default-probes",
        "ladder-default-probes-seeds",
        "ladder-bias",
        "ladder-probes",
    }
    for name, table in generated.items():
        found = mark(name).search(text)
        assert found, f"README.md has no <!-- bench:{name} --> table"
        assert found.group(2) == table, f"README's {name} table is stale: run .venv/bin/python bench/tables.py --write"
