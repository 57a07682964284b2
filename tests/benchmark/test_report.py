"""Bench's report: ratios, the table's rows, bench.json's layout."""

from genre_lab.benchmark.report import COLUMNS, ROWS, bench_report, comparison_rows, print_comparison, ratios

RESULTS = {
    "notebook": {"tokenize_s": 2.0, "train_samples_per_s": 10.0, "top1_accuracy": 0.0, "eval_peak_rss_mib": 500.0},
    "genre_lab": {"tokenize_s": 1.0, "train_samples_per_s": 40.0, "top1_accuracy": 0.5, "f1_micro": 0.25},
}


def test_ratios_are_genre_lab_over_notebook_where_both_have_a_nonzero_figure():
    assert ratios(RESULTS) == {"tokenize_s": 0.5, "train_samples_per_s": 4.0}


def test_bench_report_holds_both_recipes_the_ratios_and_the_setup():
    report = bench_report(RESULTS, {"device": "cpu"})
    assert list(report) == ["notebook", "genre_lab", "ratio", "setup"]
    assert report["ratio"] == ratios(RESULTS) and report["setup"] == {"device": "cpu"}


def test_comparison_rows_follow_rows_order_and_skip_figures_one_recipe_lacks():
    rows = comparison_rows(RESULTS)
    labels = {key: label for label, key, _ in ROWS}
    assert [row["measure"] for row in rows] == [labels["train_samples_per_s"], labels["tokenize_s"],
                                                labels["top1_accuracy"]]
    assert rows[0] == {"measure": labels["train_samples_per_s"], "notebook recipe": "10", "genre_lab": "40",
                       "genre_lab / notebook": "4.00x"}
    assert rows[2]["genre_lab / notebook"] == ""  # the notebook's figure is 0: no ratio
    assert all(list(row) == COLUMNS for row in rows)


def test_print_comparison_prints_a_titled_table(capsys):
    print_comparison(RESULTS, "tiny on cpu")
    out = capsys.readouterr().out
    assert "tiny on cpu" in out and "4.00x" in out and "0.50x" in out
    assert "micro-F1" not in out  # the notebook has no f1_micro

