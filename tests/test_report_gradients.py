"""The gradient-flow section's facts, from a hand-made ``gradient_flow.json`` payload."""

from reports.gradients import gradient_facts, gradient_section, render_gradients


def _probe(arch: str, seed: int, init_decay: float, trained_decay: float, task: str = "memory") -> dict:
    profile = {"distance": [0, 1, 2], "grad_norm": [1.0, 0.5, 0.25], "count": [4, 4, 4]}
    return {"task": task, "arch": arch, "run_id": f"{task}-{arch}-s{seed}", "seed": seed,
            "setting": "16×2, T = 64", "distance_T": 64, "alphabet": 16, "n_signals": 2,
            "sequences": 4, "init": {**profile, "decay_per_span": init_decay},
            "trained": {**profile, "decay_per_span": trained_decay, "epochs": 2, "test_accuracy": 0.9}}


PAYLOAD = {"schema": 1, "span": 50, "probes": [
    _probe("gru", 1, 0.2, 0.9), _probe("rnn", 0, 0.01, 1e-12), _probe("gru", 0, 0.1, 0.83),
]}  # fmt: skip


def test_gradient_facts_order_labels_and_decays():
    facts = gradient_facts(PAYLOAD, arch_order=["rnn", "lstm", "gru"])
    assert facts.span == 50 and facts.archs == ("rnn", "gru")  # the report's order, runs only
    # Table order: batch, then the report's architecture order, then seed; a repeated
    # architecture on one batch names its seed.
    assert [row.label for row in facts.rows] == ["rnn", "gru (seed 0)", "gru (seed 1)"]
    assert facts.decays("gru") == [(0.1, 0.83), (0.2, 0.9)] and facts.decays("rnn") == [(0.01, 1e-12)]
    assert facts.batches == ("memory, 4 sequences (T = 64, load 2 of 16)",)  # from its fields
    assert gradient_facts(None) is None and gradient_facts({"span": 50, "probes": []}) is None


def test_the_section_renders_its_facts():
    facts = gradient_facts(PAYLOAD, arch_order=["rnn", "gru"])
    text = render_gradients(facts, "gradient_flow.png")
    assert "| gru (seed 1) | memory | T = 64, load 2 of 16 | 0.2 | 0.9 |" in text
    assert "| rnn | memory | T = 64, load 2 of 16 | 0.01 | 1.0e-12 |" in text
    assert text.endswith("![Gradient norm against distance from the readout](plots/gradient_flow.png)\n")
    markdown, figures = gradient_section(PAYLOAD, ["rnn", "gru"])
    assert markdown == text and set(figures) == {"gradient_flow.png"}


def test_runs_the_probe_could_not_read_are_named_not_dropped():
    import pytest

    from bench.results.records import RecordError, validate_gradient_flow

    why = "could not download the IMDb dataset; pass --data PATH or set RNNBENCH_IMDB=PATH"
    payload = {**PAYLOAD, "left_out": [{"run_id": "gru-s0-0123abcd", "reason": why}]}
    facts = gradient_facts(validate_gradient_flow(payload), arch_order=["rnn", "gru"])
    assert facts.left_out == (("gru-s0-0123abcd", why),)
    assert f"Left out of the probe (not in the table or the figure): `gru-s0-0123abcd` ({why})." \
        in render_gradients(facts)
    assert gradient_facts(PAYLOAD).left_out == ()  # a payload without them renders as before
    with pytest.raises(RecordError, match="'left_out' must be a list"):
        validate_gradient_flow({**PAYLOAD, "left_out": [{"run_id": 1}]})


def test_a_memory_load_has_one_name_in_the_reports_and_the_suite():
    from data_pipeline.memory import load_label
    from reports.gradients import load_name
    from reports.memory import Load

    assert load_name(16, 2) == load_label(16, 2) == Load(16, 2).label == "2 of 16"
