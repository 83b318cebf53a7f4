"""Config, presets and `--set` overrides: every bad preset, key or value fails before anything runs, with a
message that names the key and what it accepts."""

from __future__ import annotations

import pytest

from gradient_quarantine.experiments.presets import (
    ConfigError,
    build_config,
    list_presets,
    parse_set,
    valid_keys,
)
from gradient_quarantine.train.config import MODE_NAMES, TrainConfig


def test_presets_ship_and_validate():
    assert {"smoke", "demo", "paper"} <= set(list_presets())
    for name in ("smoke", "demo", "paper"):
        cfg = build_config(name)
        assert cfg.preset == name
        rec = cfg.to_record()
        for key in ("name", "arm", "seed", "preset", "steps", "model", "pair_modes", "git_commit", "config_hash"):
            assert key in rec, key
    paper = build_config("paper")
    assert paper.model == "Qwen/Qwen3-4B" and paper.data.problems == "hf:newfacade/LeetCodeDataset"
    assert (paper.grpo.prompts_per_step, paper.grpo.num_generations) == (16, 16)
    assert (paper.grpo.temperature, paper.grpo.max_completion_length, paper.grpo.beta, paper.grpo.epsilon) == (
        0.7, 1536, 0.0, 0.2,
    )  # fmt: skip
    assert build_config("demo").model == "smollm2-135m"
    assert build_config("smoke").model == "tiny"


def test_set_overrides_and_types():
    cfg = build_config("smoke", ["method=vanilla", "grpo.lr=3e-4", "pair_modes=null", "eval.knob_on=false"])
    assert cfg.method == "vanilla" and cfg.grpo.lr == pytest.approx(3e-4) and cfg.eval.knob_on is False
    assert cfg.resolved().pair_modes == [] and cfg.resolved().arm == "vanilla_teacher50"
    cfg = build_config("smoke", ["pair_modes=[overwrite_tests, visible_tests]", "teacher.fraction=0"])
    assert cfg.resolved().pair_modes == ["overwrite_tests", "visible_tests"]
    assert cfg.resolved().arm == "route2b_heldout" and cfg.resolved().name == "route2b_heldout_s41"
    assert build_config("smoke", [], name="x1").resolved().name == "x1"
    assert parse_set("routing.frout_target=none") == ("routing.frout_target", None)
    # run.report_to takes TRL's spellings too: none (no tracker) and one name for a list of one
    for item, want in [("none", []), ("null", []), ("tensorboard", ["tensorboard"]), ("[wandb, trackio]", ["wandb", "trackio"])]:
        assert build_config("smoke", [f"run.report_to={item}"]).run.report_to == want
    assert build_config("smoke").run.report_to == []


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match=r"unknown preset 'smok' \(did you mean 'smoke'\?\)"):
        build_config("smok")


def test_unknown_key_suggests():
    with pytest.raises(ConfigError, match=r"unknown config key 'grpo.temprature' \(did you mean 'grpo.temperature'"):
        build_config("smoke", ["grpo.temprature=1.0"])
    with pytest.raises(ConfigError, match="expected key=value"):
        build_config("smoke", ["grpo.lr"])


@pytest.mark.parametrize(
    "item, match",
    [
        ("grpo.temperature=-1", r"grpo.temperature=-1: Input should be greater than 0"),
        ("routing.gate=tokens", r"routing.gate='tokens': Input should be 'rollout' or 'token'"),
        ("pair_modes=[overwrite_test]", r"did you mean 'overwrite_tests'"),
        ("steps=abc", r"steps='abc': Input should be a valid integer"),
        ("grpo.micro_batch=3", r"grpo.micro_batch=3 must divide the rollouts per step .* set grpo.micro_batch to one of \[1, 2, 4, 8\]"),
        ("routing.direction=random", r"routing.frout_from=<the real arm's run dir>"),
        ("teacher.fraction=0.1", r"rounds to 0 teacher rollouts per group; set teacher.fraction >= 0.25"),
        ("teacher.fraction=0.9", r"leaves no policy rollout"),
        ("run.report_to=tensorbord", r"run.report_to='tensorbord': Input should be 'tensorboard', 'wandb' or 'trackio'"),
        ("run.report_to=all", r"name the trackers .*: tensorboard, wandb, trackio"),
        ("run.report_to=[none, wandb]", r"'none' means no tracker"),
        ("run.report_to=[wandb, wandb]", r"a tracker is named twice"),
    ],
)
def test_bad_values_name_the_key(item, match):
    with pytest.raises(ConfigError, match=match):
        build_config("smoke", [item])


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="method=vanilla has no pair set"):
        build_config("smoke", ["method=vanilla", "pair_modes=[exit_code]"])
    with pytest.raises(ConfigError, match="set adapter.knob=disjoint"):
        build_config("smoke", ["method=vanilla", "adapter.knob=vgrad_span"])
    with pytest.raises(ConfigError, match="set only one of routing.frout_target and routing.frout_from"):
        build_config("smoke", ["routing.frout_target=0.1", "routing.frout_from=x"])
    with pytest.raises(ConfigError, match="grpo.scale_rewards=group"):
        build_config("smoke", ["grpo.adv_std_floor=0.5", "grpo.scale_rewards=none"])
    # a matched control is fine
    assert build_config("smoke", ["routing.direction=placebo", "routing.frout_target=0.2"]).resolved().arm.startswith(
        "placebo"
    )


def test_config_hash_tracks_results_not_bookkeeping():
    a = build_config("smoke")
    assert a.config_hash() == build_config("smoke", ["run.cache_dir=/elsewhere"], name="other").config_hash()
    assert a.config_hash() == build_config("smoke", ["run.report_to=[tensorboard, wandb]"]).config_hash()
    assert a.config_hash() != build_config("smoke", ["seed=42"]).config_hash()
    rec = a.to_record()
    assert TrainConfig.from_record(rec).config_hash() == rec["config_hash"]


def test_every_key_is_documented():
    keys = valid_keys()
    assert "grpo.lr" in keys and "routing.refresh_every" in keys
    for key, (doc, _) in keys.items():
        assert doc, f"{key} has no doc"
    assert set(MODE_NAMES) == {"overwrite_tests", "visible_tests", "eq_override", "exit_code"}


def test_docs_name_every_key():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text(encoding="utf-8")
    missing = [k for k in valid_keys() if f"`{k}`" not in doc]
    assert not missing, f"docs/training.md does not document {missing}"


def test_adapter_settings_are_checked_by_the_adapters_own_config():
    """Adapter settings are validated in one place (model/adapter_config.AdapterConfig): the config's adapter
    section builds one, so a bad value fails with the adapter's own message, and the section hands the trainer
    exactly that config."""
    import re

    from gradient_quarantine.model.adapter_config import DEFAULT_TARGETS, AdapterConfig

    cases = [
        (["adapter.rank=0"], dict(rank=0)),
        (["adapter.knob_rank=0"], dict(knob_rank=0)),
        (["adapter.layers=[2, 1]"], dict(layers=[2, 1])),
        (["adapter.layers=[3]"], dict(layers=[3])),
        (["adapter.knob=vgrad_span", "adapter.knob_rank=9"], dict(rank=8, knob_relation="vgrad_span", knob_rank=9)),
    ]
    for items, kwargs in cases:
        with pytest.raises(ValueError) as want:
            AdapterConfig(**kwargs)
        with pytest.raises(ConfigError, match=re.escape(f"adapter: {want.value}")):
            build_config("smoke", items)
    demo = build_config("demo").adapter.adapter_config()
    assert (demo.rank, demo.knob_rank, demo.knob_relation, demo.layers) == (32, 4, "disjoint", (15, 30))
    assert demo.target_modules == DEFAULT_TARGETS
    some = build_config("smoke", ["adapter.targets=[q_proj, mlp.up_proj]", "adapter.knob=shared"]).adapter
    pattern = some.adapter_config().target_modules
    assert some.adapter_config().knob_relation == "shared"
    hits = [n for n in ("model.layers.0.self_attn.q_proj", "model.layers.0.mlp.up_proj", "model.layers.0.self_attn.k_proj",
                        "model.layers.0.self_attn.xq_proj", "model.layers.0.attn.up_proj") if re.search(pattern, n)]  # fmt: skip
    assert hits == ["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.up_proj"]


def test_sampler_auto_resolves_to_the_faster_path_for_the_device():
    """`rollout.sampler=auto` (the default): the fast sampler on a CPU, TRL's generate on CUDA (bench/README.md);
    config.json records the resolved one; an explicit choice wins."""
    cfg = build_config("smoke", ["run.device=cpu"])
    assert cfg.rollout.sampler == "auto"
    assert cfg.rollout.sampler_for("cpu") == "fast" and cfg.rollout.sampler_for("cuda") == "trl"
    assert cfg.resolved().rollout.sampler == "fast"
    assert cfg.resolved().config_hash() == build_config("smoke", ["run.device=cpu", "rollout.sampler=fast"]).resolved().config_hash()
    explicit = build_config("smoke", ["rollout.sampler=trl"])
    assert explicit.rollout.sampler_for("cpu") == "trl" and explicit.resolved().rollout.sampler == "trl"
