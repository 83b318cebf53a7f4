"""Sweeps: a YAML file names arms (a base preset plus overrides) and seeds; it expands into queue jobs.

    >>> sweep = load_sweep("demo")                       # experiments/sweeps/demo.yaml, or a path
    >>> jobs = expand(sweep, seeds=[41])                 # [PlannedJob(label="vanilla", seed=41, ...), ...]
    >>> problems = validate(jobs)                        # {job name: why the trainer rejects it}
    >>> specs = to_job_specs(jobs, queue)                # JobSpec list with dependencies, for JobQueue.add

A sweep file:

    name: demo
    preset: demo                 # base preset of every arm (experiments/presets/<preset>.yaml)
    seeds: [41, 42, 43]          # default
    set: {eval.every: 5}         # overrides for every job (dotted config keys)
    arms:
      - vanilla                  # an arm file: experiments/arms/vanilla.yaml
      - route2b
      - random_v                 # its routing.frout_from is "{run_dir:route2b}": runs after route2b, same seed
      - {arm: vanilla, suffix: long, set: {steps: 200}}      # a variant of an arm file
      - {name: my_arm, set: {method: route2b, routing.k: 2}} # an inline arm
      - {arm: route2b, suffix: more, seeds: [41, 42, 43, 44, 45]}   # this entry on its own seeds
    command: null                # optional argv template: run this instead of `gq train` (tests, custom jobs)

Precedence of overrides: preset < sweep `set` < arm file `set` < entry `set` < `queue add --set`.
An override value "{run_dir:LABEL}" names another entry of the sweep (same seed): the job waits for it and
gets its run directory (how random-V is frout-matched to the route2b run of its seed). LABEL is the entry's
arm name plus `_<suffix>`; an entry with a suffix looks for LABEL_<suffix> first.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gradient_quarantine.experiments.queue import DEFAULT_RUNS_DIR, JobQueue, JobSpec, QueueError

HERE = Path(__file__).resolve().parent
ARMS_DIR = HERE / "arms"
SWEEPS_DIR = HERE / "sweeps"
DEFAULT_SEEDS = (41, 42, 43)
_REF = re.compile(r"^\{run_dir:([A-Za-z0-9_.+-]+)\}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class SweepError(ValueError):
    """A sweep or arm file that cannot be expanded; the message says what to fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArmFile(_Strict):
    """experiments/arms/<name>.yaml: an override set on top of a base preset."""

    description: str = Field(description="one line: what the arm does")
    tests: str = Field("", description="what question the arm answers")
    artifact: str = Field("", description="the report artifact it feeds (A2, A3, A5, A7)")
    reads_labels: bool = Field(
        False, description="whether the arm's training reads hack/gt labels (baselines may; route2b never)"
    )
    preset: str | None = Field(None, description="base preset (default: the sweep's)")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted config key -> value")


class ArmEntry(_Strict):
    """One entry of a sweep's `arms`: an arm file name, optionally varied, or a whole inline arm."""

    arm: str | None = Field(None, description="name of an arm file (experiments/arms/<arm>.yaml)")
    name: str | None = Field(None, description="name of an inline arm (with `set`, no arm file)")
    suffix: str | None = Field(None, description="label suffix of a variant, e.g. 'long' -> vanilla_long")
    preset: str | None = Field(None, description="base preset for this entry (default: arm file's, then sweep's)")
    set: dict[str, Any] = Field(default_factory=dict, description="overrides on top of the arm file's")
    description: str | None = None
    reads_labels: bool | None = None
    priority: int = Field(0, description="added to the queue priority of this entry's jobs")
    seeds: list[int] | None = Field(
        None, min_length=1, description="this entry's seeds (default: the sweep's; `--seeds` overrides both)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ArmEntry:
        if (self.arm is None) == (self.name is None):
            raise ValueError("an arm entry needs exactly one of `arm` (an arm file) or `name` (an inline arm)")
        for v in (self.arm, self.name, self.suffix):
            if v is not None and not _LABEL.match(v):
                raise ValueError(f"{v!r}: use letters, digits and . _ + - only")
        return self


class SweepFile(_Strict):
    """A sweep: which arms on which base preset, which seeds."""

    name: str = Field(description="sweep name (recorded on every job)")
    preset: str | None = Field(None, description="base preset of every arm")
    seeds: list[int] = Field(default_factory=lambda: list(DEFAULT_SEEDS), min_length=1)
    set: dict[str, Any] = Field(default_factory=dict, description="overrides for every job")
    arms: list[ArmEntry] = Field(min_length=1)
    command: list[str] | None = Field(
        None, description="argv template run instead of `gq train` ({run_dir} {job_id} {attempt} {name} {arm} {seed})"
    )
    max_attempts: int = Field(3, ge=1, description="starts of a job before a dying worker fails it")

    @field_validator("arms", mode="before")
    @classmethod
    def _names_to_entries(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"arm": a} if isinstance(a, str) else a for a in v]
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds {v} repeat a seed")
        return v


@dataclass
class PlannedJob:
    """One (arm entry, seed) of a sweep, before it has a queue id."""

    label: str  # arm[_suffix]
    arm: str  # the arm label runs record (config `arm`), what the report groups by
    seed: int
    preset: str | None
    overrides: dict[str, Any]
    sweep: str
    reads_labels: bool
    description: str
    refs: dict[str, str] = field(default_factory=dict)  # override key -> referenced label
    command: list[str] | None = None
    priority: int = 0
    max_attempts: int = 3

    @property
    def name(self) -> str:
        return f"{self.label}_s{self.seed}"


# ----------------------------------------------------------------------------------------------------


def list_arms() -> list[str]:
    return sorted(p.stem for p in ARMS_DIR.glob("*.yaml"))


def list_sweeps() -> list[str]:
    return sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise SweepError(f"{what} {path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise SweepError(f"{what} {path}: must be a mapping, got {type(data).__name__}")
    return data


def _nice(e: ValidationError, what: str) -> SweepError:
    lines = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        lines.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}" if loc else err["msg"])
    return SweepError(f"{what}:\n  " + "\n  ".join(lines))


def _load_named(name: str, folder: Path, shipped: list[str], model: type[BaseModel], kind: str) -> Any:
    """A shipped YAML by name (<folder>/<name>.yaml) or a path to one, validated as `model`.

    An unknown name fails with a did-you-mean and the shipped names; a bad file names its keys.
    """
    path = Path(name) if name.endswith((".yaml", ".yml")) else folder / f"{name}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(name, shipped, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SweepError(f"unknown {kind} {name!r}{hint}; shipped {kind}s: {', '.join(shipped)} (or a path to a .yaml)")
    try:
        return model.model_validate(_read_yaml(path, f"{kind} file"))
    except ValidationError as e:
        raise _nice(e, f"{kind} file {path}") from None


def load_arm(name: str) -> ArmFile:
    """An arm file by name (experiments/arms/<name>.yaml) or path."""
    return _load_named(name, ARMS_DIR, list_arms(), ArmFile, "arm")


def load_sweep(name: str | Path) -> SweepFile:
    """A sweep by name (experiments/sweeps/<name>.yaml) or path."""
    return _load_named(str(name), SWEEPS_DIR, list_sweeps(), SweepFile, "sweep")


def expand(sweep: SweepFile, seeds: list[int] | None = None, extra: dict[str, Any] | None = None) -> list[PlannedJob]:
    """Every (entry, seed) as a PlannedJob with its merged overrides; checks references between entries."""
    cli_seeds = bool(seeds)
    seeds = list(seeds) if seeds else list(sweep.seeds)
    planned: list[PlannedJob] = []
    labels: list[str] = []
    for entry in sweep.arms:
        if entry.arm is not None:
            arm_file = load_arm(entry.arm)
            arm_name, base_set = entry.arm, dict(arm_file.set)
            description, reads = arm_file.description, arm_file.reads_labels
            preset = entry.preset or arm_file.preset or sweep.preset
        else:
            arm_name, base_set = str(entry.name), {}
            description, reads = entry.description or "inline arm", bool(entry.reads_labels)
            preset = entry.preset or sweep.preset
        label = arm_name + (f"_{entry.suffix}" if entry.suffix else "")
        if label in labels:
            raise SweepError(f"sweep {sweep.name}: arm {label!r} is listed twice (give one a `suffix`)")
        labels.append(label)
        if preset is None and sweep.command is None:
            raise SweepError(f"sweep {sweep.name}: arm {label!r} has no preset (set `preset` on the sweep or the entry)")
        overrides = {**sweep.set, **base_set, **entry.set, **(extra or {})}
        overrides["arm"] = arm_name  # the label runs record and the report groups by
        refs = {k: m.group(1) for k, v in overrides.items() if isinstance(v, str) and (m := _REF.match(v))}
        for seed in seeds if cli_seeds else (entry.seeds or seeds):
            planned.append(
                PlannedJob(
                    label=label, arm=arm_name, seed=seed, preset=preset,
                    overrides={**overrides, "seed": seed}, sweep=sweep.name, reads_labels=reads,
                    description=description, refs=refs, command=sweep.command,
                    priority=entry.priority, max_attempts=sweep.max_attempts,
                )
            )
    return planned


def _target(job: PlannedJob, ref: str, labels: set[str]) -> str | None:
    suffix = job.label[len(job.arm):]  # "" or "_long"
    for cand in (ref + suffix, ref):
        if cand in labels:
            return cand
    return None


def placeholder_free(job: PlannedJob, dummy: str = "/nonexistent/run_dir") -> dict[str, Any]:
    """The job's overrides with every {run_dir:...} replaced by a dummy path (for validation)."""
    return {k: (dummy if k in job.refs else v) for k, v in job.overrides.items()}


def validate(jobs: list[PlannedJob]) -> dict[str, str]:
    """Build every train job's config with the trainer's own validator. Returns {job name: problem}.

    A key the trainer does not know (an arm it does not implement yet) is reported as such, naming the arm.
    """
    from gradient_quarantine.experiments.jobrun import format_override
    from gradient_quarantine.experiments.presets import ConfigError, build_config, valid_keys

    known = valid_keys()
    problems: dict[str, str] = {}
    for job in jobs:
        if job.command is not None:
            continue  # a custom command is not the trainer: nothing of the trainer's to validate
        overrides = placeholder_free(job)
        missing = [k for k in overrides if k not in known]
        if missing:
            problems[job.name] = (
                f"arm {job.arm!r} needs trainer support that is missing: unknown config key(s) "
                f"{', '.join(missing)} ({job.description})"
            )
            continue
        try:
            build_config(str(job.preset), [format_override(k, v) for k, v in overrides.items()], name=job.name)
        except ConfigError as e:
            problems[job.name] = f"arm {job.arm!r}: {e}"
    return problems


def to_job_specs(
    jobs: list[PlannedJob], queue: JobQueue | None = None, runs_dir: str | Path = DEFAULT_RUNS_DIR
) -> list[JobSpec]:
    """JobSpecs for JobQueue.add, with a dependency for every {run_dir:LABEL} reference.

    A reference is resolved within the batch first (same seed), else to a job already in `queue` (same arm,
    seed and preset, not failed/killed), else it is an error that says which job to add.
    """
    index = {(j.label, j.seed): i for i, j in enumerate(jobs)}
    labels = {j.label for j in jobs}
    specs: list[JobSpec] = []
    for job in jobs:
        overrides = dict(job.overrides)
        after: list[int] = []
        depends_on: list[int] = []
        for key, ref in job.refs.items():
            tgt = _target(job, ref, labels)
            if tgt is not None and (tgt, job.seed) in index:
                i = index[(tgt, job.seed)]
                after.append(i)
                overrides[key] = f"{{run_dir:after={i}}}"  # JobQueue.add turns it into {run_dir:job=ID}
                continue
            found = queue.find(arm=ref, seed=job.seed, preset=job.preset) if queue is not None else None
            if found is None:
                raise SweepError(
                    f"job {job.name}: {key} refers to the {ref!r} run of seed {job.seed}, which is neither in this "
                    f"sweep nor in the queue; add arm {ref!r} to the sweep (or queue it first)"
                )
            depends_on.append(found.id)
            overrides[key] = f"{{run_dir:job={found.id}}}"
        specs.append(
            JobSpec(
                name=job.name, kind="command" if job.command else "train", preset=job.preset,
                overrides=overrides, argv=list(job.command) if job.command else None, sweep=job.sweep,
                arm=job.arm, seed=job.seed, runs_dir=str(runs_dir), after=after, depends_on=depends_on,
                max_attempts=job.max_attempts, priority_bump=job.priority,
            )
        )
    return specs


def add_sweep(
    queue: JobQueue,
    sweep: SweepFile,
    *,
    seeds: list[int] | None = None,
    extra: dict[str, Any] | None = None,
    priority: int = 0,
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    skip_invalid: bool = False,
    check: bool = True,
) -> tuple[list[int], dict[str, str]]:
    """Expand, validate and queue a sweep. Returns (job ids, {job name: why skipped}).

    Invalid jobs abort the whole add (nothing is queued) unless `skip_invalid`, which queues the valid ones and
    skips, with them, any job that depends on a skipped one.
    """
    jobs = expand(sweep, seeds, extra)
    problems = validate(jobs) if check else {}
    if problems and not skip_invalid:
        raise SweepError(
            f"sweep {sweep.name}: {len(problems)} of {len(jobs)} jobs cannot run as configured "
            "(nothing was queued; fix them or pass --skip-invalid):\n  "
            + "\n  ".join(f"{n}: {p}" for n, p in problems.items())
        )
    # Skipping a job skips its dependants too (they would wait forever).
    labels = {j.label for j in jobs}
    changed = True
    while changed:
        changed = False
        bad = {(j.label, j.seed) for j in jobs if j.name in problems}
        for j in jobs:
            if j.name in problems:
                continue
            for ref in j.refs.values():
                tgt = _target(j, ref, labels)
                if tgt is not None and (tgt, j.seed) in bad:
                    problems[j.name] = f"depends on {tgt}_s{j.seed}, which was skipped"
                    changed = True
    keep = [j for j in jobs if j.name not in problems]
    if not keep:
        return [], problems
    ids = queue.add(to_job_specs(keep, queue, runs_dir), priority=priority)
    return ids, problems


def describe(jobs: list[PlannedJob]) -> list[dict[str, Any]]:
    """Rows for `queue add --dry-run`."""
    return [
        {"name": j.name, "arm": j.arm, "preset": j.preset, "reads_labels": j.reads_labels,
         "overrides": {k: v for k, v in j.overrides.items() if k not in ("arm", "seed")},
         "after": sorted(set(j.refs.values()))}
        for j in jobs
    ]


__all__ = [
    "ArmEntry", "ArmFile", "PlannedJob", "QueueError", "SweepError", "SweepFile", "add_sweep", "describe",
    "expand", "list_arms", "list_sweeps", "load_arm", "load_sweep", "to_job_specs", "validate",
]
