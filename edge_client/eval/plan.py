"""The settings an evaluation runs, each a policy with its parameters, named by a spec:

never            the student alone            teacher        the teacher alone (always, max_span)
always[:K]       the teacher every K tokens   command        RelayLLM's <call>n</call>
confidence:θ     top-token probability < θ    entropy:B      next-token entropy > B nats
step:B           entropy > B as a step starts random:P       a call with probability P
                 (the teacher writes the line)
router:τ         the router's score > τ (--router, or the pair's shipped router)
verify:P[:K[:D]] the teacher checks drafts of D tokens and writes K where it rejects one
                 (a token it gives < P, not its own top token); K: --span, D: --draft
random           one random setting per confidence/entropy/step/router/verify setting, at
                 the call rate matching the teacher-token share that setting measured
random~S         the cost-matched random setting of setting S only (S must run too)
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_client.errors import ConfigError
from edge_client.policies.base import Policy
from edge_client.policies.registry import PolicyName, build_policy, call_span
from edge_client.router.model import RouterModel
from edge_client.settings import EdgeSettings
from relay_common.echo import quoted

DEFAULT_SPECS = (
    "never",
    "teacher",
    "confidence:0.3",
    "confidence:0.4",
    "confidence:0.5",
    "entropy:1.5",
    "step:1.5",
    "random",
    "always:8",
    "command",
)
_THRESHOLDED = {
    PolicyName.CONFIDENCE: "θ",
    PolicyName.ENTROPY: "nats",
    PolicyName.STEP: "nats",
    PolicyName.ROUTER: "score",
}
_PROBABILITIES = {PolicyName.CONFIDENCE, PolicyName.ROUTER, PolicyName.RANDOM}  # 0..1
# The settings a cost-matched random setting may match.
_MATCHABLE = {*_THRESHOLDED, PolicyName.VERIFY}


@dataclass(frozen=True, slots=True)
class EvalSetting:
    key: str  # the spec, normalised: how records and the summary name this setting
    policy: PolicyName
    span: int
    value: float | None = None  # θ, the entropy bound, the random rate or verify's P
    matched_to: str | None = None  # random: the setting whose teacher-token share it matches
    draft: int | None = None  # verify: tokens per draft

    @property
    def family(self) -> str:
        """The curve this setting is a point of ("teacher" for the teacher alone)."""
        return "teacher" if self.key == "teacher" else self.policy.value

    def build(
        self,
        settings: EdgeSettings,
        *,
        rate: float | None,
        seed: int,
        router: RouterModel | None = None,
    ) -> Policy:
        """This setting's policy; `rate` is the matched call rate of a cost-matched random,
        `router` the router file of a router setting."""
        value = self.value if rate is None else rate
        thresholded = self.policy in {PolicyName.CONFIDENCE, PolicyName.ROUTER}
        return build_policy(
            self.policy,
            span=self.span,
            max_span=settings.max_span,
            threshold=value if thresholded else settings.threshold,
            entropy_bound=value if self.policy in {PolicyName.ENTROPY, PolicyName.STEP} else 0.0,
            min_gap=settings.min_gap,
            budget=None,
            rate=value if self.policy is PolicyName.RANDOM else 0.0,
            seed=seed,
            accept_prob=value if self.policy is PolicyName.VERIFY else settings.accept_prob,
            draft=self.draft or settings.draft,
            draft_window=settings.draft_window,
            router=router,
        )


def plan_settings(specs: list[str], settings: EdgeSettings) -> list[EvalSetting]:
    """The settings named by `specs`, cost-matched random ones last (they need the measured
    share of the setting they match). Raises ConfigError naming a bad spec."""
    planned: list[EvalSetting] = []
    match_all = False
    matched_keys: list[str] = []  # the settings named by random~S, normalised
    for spec in specs:
        spec = spec.strip()
        if spec.startswith("random~"):
            source = spec.removeprefix("random~")
            name, _, argument = source.partition(":")
            matched_keys.append(_setting(name, argument, spec=source, settings=settings).key)
            continue
        name, _, argument = spec.partition(":")
        if name == "random" and not argument:
            match_all = True
            continue
        planned.append(_setting(name, argument, spec=spec, settings=settings))
    thresholded = [item for item in planned if item.policy in _MATCHABLE]
    if match_all and not thresholded:
        raise ConfigError(
            "the setting `random` matches the cost of confidence, entropy, step, router or "
            "verify settings; add one (e.g. --setting confidence:0.4) or give a rate "
            "(random:0.05)"
        )
    thresholded_keys = {item.key for item in thresholded}
    unmatched = [key for key in matched_keys if key not in thresholded_keys]
    if unmatched:
        raise ConfigError(
            f"random~{unmatched[0]} matches the cost of {unmatched[0]}, which must run too "
            f"(--setting {unmatched[0]}) and be a confidence, entropy, step, router or verify "
            "setting"
        )
    planned += [
        EvalSetting(
            key=f"random~{source.key}",
            policy=PolicyName.RANDOM,
            span=source.span,  # the same span, so the same cost per call
            matched_to=source.key,
        )
        for source in thresholded
        if match_all or source.key in matched_keys
    ]
    keys = [item.key for item in planned]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ConfigError(f"settings named twice: {', '.join(duplicates)}")
    return planned


def matched_rate(teacher_share: float, *, span: int) -> float:
    """The per-position call rate at which calls of `span` tokens give `teacher_share` of all
    tokens: a call (prob. p) adds span teacher tokens, else one student token, so
    share = p·k / (p·k + 1 - p), solved for p."""
    if teacher_share <= 0:
        return 0.0
    return min(1.0, teacher_share / (span - teacher_share * (span - 1)))


def _setting(name: str, argument: str, *, spec: str, settings: EdgeSettings) -> EvalSetting:
    try:
        policy = PolicyName("always" if name == "teacher" else name)
    except ValueError:
        raise ConfigError(
            f"unknown setting {quoted(spec)}; use never, teacher, always[:K], confidence:θ, "
            "entropy:B, step:B, router:τ, verify:P[:K[:D]], random[:P], random~SETTING or command"
        ) from None
    if name == "teacher":
        return EvalSetting(key="teacher", policy=policy, span=settings.max_span)
    if policy is PolicyName.VERIFY:
        return _verify_setting(argument, spec=spec, settings=settings)
    if policy is PolicyName.ALWAYS:
        span = int(_number(argument, spec=spec, kind=int)) if argument else settings.span
        if span < 1:
            raise ConfigError(f"setting {quoted(spec)}: the span must be at least 1")
        return EvalSetting(key=f"always:{span}", policy=policy, span=span)
    if policy in _THRESHOLDED or policy is PolicyName.RANDOM:
        if not argument:
            raise ConfigError(f"setting {quoted(spec)} needs a value, e.g. {name}:0.4")
        argument, _, span_argument = argument.partition(":")
        value = _number(argument, spec=spec, kind=float)
        if policy in _PROBABILITIES and not 0 <= value <= 1:
            raise ConfigError(f"setting {quoted(spec)}: the value must be between 0 and 1")
        if value < 0:
            raise ConfigError(f"setting {quoted(spec)}: the entropy bound must not be negative")
        if span_argument and policy is PolicyName.RANDOM:
            raise ConfigError(f"setting {quoted(spec)}: random takes its span from --span")
        if span_argument and policy is PolicyName.STEP:
            raise ConfigError(
                f"setting {quoted(spec)}: a step ends at its line break, at most max_span tokens "
                f"(RELAY_MAX_SPAN); write {name}:{argument}"
            )
        if not span_argument:
            span = call_span(policy, span=settings.span, max_span=settings.max_span)
            return EvalSetting(key=f"{name}:{value:g}", policy=policy, span=span, value=value)
        span = int(_number(span_argument, spec=spec, kind=int))
        if span < 1:
            raise ConfigError(f"setting {quoted(spec)}: the span must be at least 1")
        return EvalSetting(key=f"{name}:{value:g}:{span}", policy=policy, span=span, value=value)
    if argument:
        raise ConfigError(f"setting {quoted(spec)} takes no value; write {name}")
    return EvalSetting(key=name, policy=policy, span=settings.span)


def _verify_setting(argument: str, *, spec: str, settings: EdgeSettings) -> EvalSetting:
    """verify:P[:K[:D]], named in full (verify:P:K:D) whatever was left to the defaults."""
    parts = argument.split(":") if argument else []
    if not 1 <= len(parts) <= 3:
        raise ConfigError(
            f"setting {quoted(spec)}: write verify:P[:K[:D]], e.g. verify:0.1:1:32 (P the smallest "
            "probability the teacher accepts, K its span, D the draft's tokens)"
        )
    accept_prob = _number(parts[0], spec=spec, kind=float)
    if not 0 <= accept_prob <= 1:
        raise ConfigError(f"setting {quoted(spec)}: P must be between 0 and 1")
    span = int(_number(parts[1], spec=spec, kind=int)) if len(parts) > 1 else settings.span
    draft = int(_number(parts[2], spec=spec, kind=int)) if len(parts) > 2 else settings.draft
    if span < 1 or draft < 1:
        raise ConfigError(f"setting {quoted(spec)}: the span and the draft must be at least 1")
    return EvalSetting(
        key=f"verify:{accept_prob:g}:{span}:{draft}",
        policy=PolicyName.VERIFY,
        span=span,
        value=accept_prob,
        draft=draft,
    )


def _number(argument: str, *, spec: str, kind: type[float] | type[int]) -> float:
    try:
        return kind(argument)
    except ValueError:
        raise ConfigError(f"setting {quoted(spec)}: {quoted(argument)} is not a number") from None
