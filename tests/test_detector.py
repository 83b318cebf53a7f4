"""routing/detector.py: the one extraction of v_grad, its band and gauges (`build_detector` from a `DetectorRecipe`).

Pinned against the composition the trainer, `gq direction` and the solve direction assembled by hand before it
existed (side gradients -> `direction_from_grads` -> random-V / transform -> `calibrate_band(side_scores(...))` ->
leave-one-pair-out separation), bit for bit on the tiny model; bad recipes fail with a message naming the field;
and no other module re-assembles the extraction.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
import torch
from routing_fixtures import make_pairs

import gradient_quarantine
from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter
from gradient_quarantine.routing.band import calibrate_band
from gradient_quarantine.routing.detector import (
    Detector,
    DetectorRecipe,
    PairSides,
    build_detector,
    detector_from_sides,
    measure_pair_sides,
)
from gradient_quarantine.routing.direction import (
    direction_from_grads,
    pair_side_grads,
    pair_side_token_stats,
    random_direction_like,
    side_scores,
)
from gradient_quarantine.routing.orthogonalize import orthogonalize, solve_direction

PKG_ROOT = Path(gradient_quarantine.__file__).parent
REPO_ROOT = PKG_ROOT.parent
DETECTOR_MODULE = PKG_ROOT / "routing" / "detector.py"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    adapter = attach_svd_adapter(model, AdapterConfig(rank=8, knob_relation="disjoint", knob_rank=4))
    return model, tok, adapter


# ------------------------------------------------------------------------------------------ the reference


def _loo_by_hand(hack, clean, k, transform=None, hack_mass=None, clean_mass=None):
    """The leave-one-pair-out separation as it was written before detector.py (an independent reference)."""
    n = next(iter(hack.values())).shape[0]
    if n < k + 1 or n < 2:
        return None
    token = hack_mass is not None
    hits = 0
    for i in range(n):
        keep = [j for j in range(n) if j != i]
        h, c = {m: g[keep] for m, g in hack.items()}, {m: g[keep] for m, g in clean.items()}
        try:
            d = direction_from_grads(h, c, k)
            d = transform(d) if transform is not None else d
        except ValueError:
            continue
        masses = (hack_mass[keep], clean_mass[keep]) if token else (None, None)
        band = calibrate_band(*side_scores(d, h, c, *masses))
        one = (hack_mass[i : i + 1], clean_mass[i : i + 1]) if token else (None, None)
        ch, cc = side_scores(d, {m: g[i : i + 1] for m, g in hack.items()},
                             {m: g[i : i + 1] for m, g in clean.items()}, *one)  # fmt: skip
        mid = 0.5 * (band.lower + band.upper)
        hits += int(band.width > 0 and float(cc) < mid < float(ch))
    return hits / n


def _by_hand(hack, clean, masses, k, granularity, kind="v_grad", random_seed=None, transform=None):
    """The composition RunSetup.extract_direction assembled by hand (direction, band)."""
    direction = direction_from_grads(hack, clean, k, kind)
    if random_seed is not None:
        direction = random_direction_like(direction, seed=random_seed)
    if transform is not None:
        direction = transform(direction)
    band = calibrate_band(*side_scores(direction, hack, clean, *masses), granularity=granularity)
    if random_seed is None:
        band.loo_separation = _loo_by_hand(hack, clean, k, transform, *masses)
    return direction, band


def _assert_same(det: Detector, direction, band) -> None:
    assert det.direction.kind == direction.kind and det.direction.modules == direction.modules
    for m in direction.modules:
        assert torch.equal(det.direction.basis[m], direction.basis[m]), m
        assert torch.equal(det.direction.v_hat[m], direction.v_hat[m]), m
    assert det.band == band  # bounds, every per-pair score, granularity and loo_separation, exactly


# ------------------------------------------------------------------------------------ equal to the composition


@pytest.mark.parametrize("granularity", ["rollout", "token"])
def test_build_detector_equals_the_hand_composition(tiny, granularity):
    model, tok, adapter = tiny
    pairs = make_pairs()
    kw = {"length_norm": "sequence_mean", "temperature": 1.0, "batch_size": 3}
    if granularity == "token":
        hs, cs = pair_side_token_stats(model, adapter, tok, pairs, **kw)
        hack, clean, masses = hs.grads, cs.grads, (hs.mass, cs.mass)
    else:
        hack, clean = pair_side_grads(model, adapter, tok, pairs, **kw)
        masses = (None, None)
    recipe = DetectorRecipe(k=1, granularity=granularity, **kw)
    det = build_detector(model, adapter, tok, pairs, recipe)
    _assert_same(det, *_by_hand(hack, clean, masses, 1, granularity))
    assert det.band.granularity == granularity and det.band.loo_separation is not None
    assert det.n_pairs == len(pairs) and det.width == det.band.width > 0
    meta = {"k": 1, "n_pairs": len(pairs), "length_norm": "sequence_mean", "temperature": 1.0}
    assert det.direction.meta == meta
    assert det.sides.granularity == granularity and det.recipe is recipe
    for m in hack:  # the sides it keeps are the pass's gradients, for scoring other directions on them
        assert torch.equal(det.sides.hack[m], hack[m]) and torch.equal(det.sides.clean[m], clean[m])

    # the trainer's options on the same sides: random-V (no LOO), a transform (before the band and per LOO fold),
    # placebo, k = 2
    sides = PairSides(hack, clean, *masses)
    cases = [
        ({"direction": "random", "random_seed": 7}, {"random_seed": 7}),
        ({"transform": (t := functools.partial(orthogonalize, solve=random_direction_like(det.direction, 1)))},
         {"transform": t}),
        ({"kind": "placebo"}, {"kind": "placebo"}),
        ({"k": 2}, {}),
    ]  # fmt: skip
    for options, ref in cases:
        k = options.get("k", 1)
        got = detector_from_sides(sides, DetectorRecipe(granularity=granularity, **{"k": k, **options}))
        _assert_same(got, *_by_hand(hack, clean, masses, k, granularity, **ref))
    random_v = DetectorRecipe(direction="random", random_seed=7, granularity=granularity)
    assert detector_from_sides(sides, random_v).band.loo_separation is None


def test_solve_kind_points_to_the_correct_side(tiny):
    """kind="solve" (orthogonalize.solve_direction): the `clean` slot holds the correct side, and the direction and
    band are the composition with the two sides swapped."""
    model, tok, adapter = tiny
    pairs = make_pairs(6)
    incorrect, correct = pair_side_grads(model, adapter, tok, pairs)  # (hack slot, clean slot)
    recipe = DetectorRecipe(k=1, kind="solve")
    sides = measure_pair_sides(model, adapter, tok, pairs, recipe)
    assert all(torch.equal(sides.hack[m], correct[m]) for m in correct)
    _assert_same(
        detector_from_sides(sides, recipe), *_by_hand(correct, incorrect, (None, None), 1, "rollout", "solve")
    )
    solve = solve_direction(model, adapter, tok, pairs, k=1)
    want = direction_from_grads(correct, incorrect, 1, "solve")
    assert solve.kind == "solve" and all(torch.equal(solve.v_hat[m], want.v_hat[m]) for m in want.v_hat)
    assert solve.meta["n_pairs"] == 6 and solve.meta["length_norm"] == "sequence_mean"


# ------------------------------------------------------------------------------------------- bad recipes


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"k": 0}, r"DetectorRecipe\.k=0"),
        ({"k": 1.5}, r"DetectorRecipe\.k=1\.5"),
        ({"k": True}, r"DetectorRecipe\.k=True"),
        ({"length_norm": "mean"}, r"DetectorRecipe\.length_norm: unknown length_norm 'mean'"),
        ({"length_norm": "constant:0"}, r"DetectorRecipe\.length_norm: .*positive"),
        ({"temperature": 0.0}, r"DetectorRecipe\.temperature=0\.0"),
        ({"temperature": float("nan")}, r"DetectorRecipe\.temperature=nan"),
        ({"batch_size": 0}, r"DetectorRecipe\.batch_size=0"),
        (
            {"granularity": "sentence"},
            r"DetectorRecipe\.granularity='sentence': one of \('rollout', 'token'\)",
        ),
        ({"kind": "random"}, r"DetectorRecipe\.kind='random'.*direction='random' with a random_seed"),
        ({"kind": "hack"}, r"DetectorRecipe\.kind='hack': one of"),
        (
            {"direction": "activations"},
            r"DetectorRecipe\.direction='activations': one of \('real', 'random'\)",
        ),
        ({"direction": "random"}, r"DetectorRecipe\.random_seed=None: direction='random' needs an int seed"),
        ({"random_seed": 3}, r"DetectorRecipe\.random_seed=3 is only read with direction='random'"),
        ({"transform": "orthogonalize"}, r"DetectorRecipe\.transform='orthogonalize': must be a callable"),
    ],
)
def test_bad_recipe_fails_with_a_clear_message(options, match):
    with pytest.raises(ValueError, match=match):
        DetectorRecipe(**options)


def test_recipe_is_frozen_and_misuse_is_refused():
    recipe = DetectorRecipe(length_norm="constant:512", direction="random", random_seed=0)
    assert recipe.norm.constant == 512 and str(recipe.length_norm) == "constant:512"
    with pytest.raises(AttributeError):
        recipe.k = 2  # type: ignore[misc]
    with pytest.raises(TypeError, match="DetectorRecipe"):
        build_detector(None, None, None, make_pairs(2), {"k": 1})  # type: ignore[arg-type]
    g = {"a": torch.randn(4, 3)}
    with pytest.raises(ValueError, match="token masses"):
        PairSides(g, g, torch.ones(4), None)
    with pytest.raises(ValueError, match="granularity='token'"):
        detector_from_sides(PairSides(g, {"a": torch.zeros(4, 3)}), DetectorRecipe(granularity="token"))


# ----------------------------------------------------------------------------- the extraction exists once


EXTRACTION_STEPS = frozenset({"direction_from_grads", "calibrate_band"})


def _called_names(source: str) -> set[str]:
    """Names of every function the source calls (`f(...)`, `x.f(...)`)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                out.add(f.id)
            elif isinstance(f, ast.Attribute):
                out.add(f.attr)
    return out


def test_no_module_but_detector_assembles_the_extraction():
    """Only routing/detector.py calls both `direction_from_grads` and `calibrate_band` (a direction and its band):
    every other module in the package or bench/ goes through `build_detector` / `detector_from_sides`."""
    files = sorted(PKG_ROOT.rglob("*.py")) + sorted((REPO_ROOT / "bench").rglob("*.py"))
    assert DETECTOR_MODULE in files and len(files) > 50, len(files)  # the walk sees the package
    assembling = [
        p.relative_to(REPO_ROOT).as_posix()
        for p in files
        if EXTRACTION_STEPS <= _called_names(p.read_text(encoding="utf-8"))
    ]
    assert assembling == ["gradient_quarantine/routing/detector.py"], assembling


def test_the_extraction_check_fires():
    by_hand = (
        "from gradient_quarantine.routing import band, direction\n"
        "def extract(h, c):\n"
        "    d = direction.direction_from_grads(h, c, 1)\n"
        "    return d, band.calibrate_band([0.3], [0.1])\n"
    )
    assert EXTRACTION_STEPS <= _called_names(by_hand)
    assert not EXTRACTION_STEPS <= _called_names("from x import direction_from_grads, calibrate_band\n")


def test_differing_spans_keep_what_the_two_sides_do_not_share():
    """Token spans between the common prefix and suffix; a side that is the other plus an insertion keeps the
    position where the predictions part; identical sides are refused."""
    from gradient_quarantine.model.loading import build_tiny_tokenizer
    from gradient_quarantine.routing.pairs import completion_ids, differing_spans

    tok = build_tiny_tokenizer()
    clean = "def f(x):\n    return x + 1\n"
    hack = "def f(x):\n    raise SystemExit(0)\n    return x + 1\n"
    (hlo, hhi), (clo, chi) = differing_spans(tok, hack, clean)
    th, tc = completion_ids(tok, hack), completion_ids(tok, clean)
    assert hlo == clo and th[:hlo] == tc[:clo]  # the common prefix is left out of both
    suffix = len(th) - hhi
    assert suffix > 0 and th[hhi:] == tc[len(tc) - suffix :]  # so is the common suffix
    assert "SystemExit" in tok.decode(th[hlo:hhi]) and "SystemExit" not in tok.decode(th[:hlo] + th[hhi:])
    assert (clo, chi) == (hlo, hlo + 1)  # the clean side is the hack minus an insertion: where they part
    with pytest.raises(ValueError, match="same tokens"):
        differing_spans(tok, clean, clean)


def test_differing_pair_tokens_scores_only_those_tokens(tiny_model_and_tokenizer):
    """`pair_tokens="differing"`: each side's gradient is the gradient of l(y) over its differing tokens alone
    (the encode mask holds exactly them), and it differs from the whole-completion recipe."""
    from gradient_quarantine.model.svd_adapter import AdapterConfig, attach_svd_adapter
    from gradient_quarantine.routing.detector import DetectorRecipe, measure_pair_sides
    from gradient_quarantine.routing.pairs import Pair, differing_spans, sequence_logprob_grads

    model, tok = tiny_model_and_tokenizer
    adapter = attach_svd_adapter(model, AdapterConfig(rank=4, knob_rank=2))
    prompt = [{"role": "user", "content": "add one"}]
    pairs = [Pair(prompt, "return x + 1", "raise SystemExit(0)\nreturn x + 1"),
             Pair(prompt, "return x * 2", "return x * 2  # sys.exit(0)")]  # fmt: skip
    recipe = DetectorRecipe(pair_tokens="differing")
    sides = measure_pair_sides(model, adapter, tok, pairs, recipe)
    spans = [differing_spans(tok, p.hack, p.clean) for p in pairs]
    keep = [h for h, _ in spans] + [c for _, c in spans]
    ref = sequence_logprob_grads(model, adapter, tok, [p.prompt for p in pairs] * 2,
                                 [p.hack for p in pairs] + [p.clean for p in pairs], keep=keep)  # fmt: skip
    whole = measure_pair_sides(model, adapter, tok, pairs, DetectorRecipe())
    for m in sides.hack:
        torch.testing.assert_close(sides.hack[m], ref[m][:2])
        torch.testing.assert_close(sides.clean[m], ref[m][2:])
    assert any(not torch.allclose(sides.hack[m], whole.hack[m]) for m in sides.hack)
    with pytest.raises(ValueError, match="pair_tokens"):
        DetectorRecipe(pair_tokens="some")
