"""The built-in arithmetic task: templated GSM-style word problems with chain-of-thought solutions.

    generate(ArithmeticConfig(), "train", 1000, seed=0) -> list[Problem]

A problem is drawn in two stages from two random streams. Its content (template, names,
numbers, phrasing) comes first and alone decides the split, through a hash of the canonical
content, so the same underlying problem can never sit in two splits. Its layout (an
irrelevant preamble, distractor sentences between the problem's sentences) comes second, so
a small model trained on it has to find the facts by what they say, not by where they stand.

Every problem carries a plan (its start and steps) from which rsp_probe.tasks.strategies
writes several different chains of thought; the reference solution is the story-order one,
"<opening clause> a op b = c. c op d = e. ... #### e", every value a non-negative integer.
`generate_with_plans` gives the plans too (training draws a strategy per example).
"""

import hashlib
import random
from dataclasses import dataclass

from rsp_probe.errors import UsageError
from rsp_probe.tasks.answers_arithmetic import (
    extract_answer,
    is_correct,
    solution_is_consistent,
)
from rsp_probe.tasks.problem import Problem
from rsp_probe.tasks.strategies import Plan, write_solution

__all__ = [
    "SPLITS",
    "TEMPLATE_IDS",
    "ArithmeticConfig",
    "extract_answer",
    "generate",
    "generate_with_plans",
    "is_correct",
    "solution_is_consistent",
]

SPLITS = ("train", "validation", "test")
_SPLIT_BUCKET_ENDS = ((80, "train"), (90, "validation"), (100, "test"))  # percent of contents
_MIN_OPERAND = 2  # adding or removing 0 or 1 teaches nothing
_PACK_OPENING_RATE = 0.25  # "buys 3 packs of 4" instead of "has 12"
_MERGE_RATE = 0.4  # two steps in one sentence: "buys 7 more and gives 5 to Leo"
_NUMBERED_DISTRACTOR_RATE = 0.3  # the brief caps distractors with a number at about a third
_OPERATION_WEIGHTS = {"+": 2, "-": 2, "*": 1}
_MAX_MISSES_IN_A_ROW = 10_000  # the config's space of problems (for this split) is used up

NAMES = (
    "Mia", "Leo", "Ava", "Noah", "Emma", "Liam", "Zoe", "Omar", "Lily", "Sam", "Nora", "Ben",
    "Ella", "Max", "Ruby", "Jack", "Ivy", "Finn", "Maya", "Theo", "Chloe", "Ravi", "Hana",
    "Tom", "Lucy", "Kofi", "Sofia", "Yuki",
)  # fmt: skip
_OBJECTS = (
    "pencils", "marbles", "stickers", "stamps", "crayons", "seashells", "buttons", "postcards",
    "erasers", "beads", "comic books", "trading cards", "toy cars", "ribbons", "badges",
    "paper cranes",
)  # fmt: skip
_FOODS = ("cookies", "muffins", "cupcakes", "pies", "bread rolls", "pancakes", "tarts", "scones")
_PLANTS = ("tulips", "sunflowers", "roses", "daisies", "tomato plants", "carrots", "lettuces")
_BUSES = ("the red bus", "the blue bus", "the green bus", "the yellow bus", "the night bus",
          "the school bus")  # fmt: skip
_ROOMS = ("the library", "the gym", "the art room", "the music room", "the lunch hall",
          "the science lab")  # fmt: skip
_TIMES_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
                9: "nine", 10: "ten"}  # fmt: skip

# Irrelevant but real text. Scene sentences open problems and sit between their sentences;
# numbered ones only sit between, and never count the problem's nouns.
_SCENE_SENTENCES = (
    "It is a sunny Tuesday.", "The school fair starts at noon.", "The sky is grey this morning.",
    "It rained all night.", "Birds are singing in the park.", "The town square is busy today.",
    "The post office opens early on Saturdays.", "A cold wind blows from the hills.",
    "Everyone is getting ready for the holidays.", "The shop on the corner is closed today.",
    "The river is calm and clear.", "{person} likes to read comics.", "{person} wears a blue hat.",
    "{person} has a dog called Biscuit.", "{person} is learning to play the piano.",
    "{person}'s favourite colour is yellow.", "{person} lives next to the river.",
)  # fmt: skip
_NUMBERED_SENTENCES = (
    "{person} is {n} years old.", "{person} lives at number {n} on Elm Street.",
    "The clock tower is {n} metres tall.", "The walk to school takes {n} minutes.",
    "The park has {n} benches.", "{person}'s cat is {n} months old.",
    "The museum opened {n} years ago.",
)  # fmt: skip


@dataclass(frozen=True)
class _Template:
    """One story. Gains and losses are predicates of the current holder ("buys {n} more");
    multiples are whole sentences that hand the count to someone new ({other})."""

    id: str
    holders: tuple[str, ...]
    nouns: tuple[str, ...]
    starts: tuple[str, ...]
    packs: tuple[str, ...]
    gains: tuple[str, ...]
    losses: tuple[str, ...]
    multiples: tuple[str, ...]
    questions: tuple[str, ...]


_TEMPLATES = (
    _Template(
        "collection", NAMES, _OBJECTS,
        ("{who} has {n} {obj}.", "{who} owns {n} {obj}.", "{who} keeps {n} {obj} in a box."),
        ("{who} buys {k} packs of {m} {obj}.", "{who} gets {k} bags with {m} {obj} in each."),
        ("buys {n} more", "finds {n} more {obj}", "gets {n} {obj} from {other}",
         "wins {n} {obj} at the fair"),
        ("gives {n} to {other}", "loses {n} {obj}", "gives away {n} {obj}"),
        ("{other} has {k} times as many {obj} as {who}.",
         "{other} has {k} times as many {obj} as {who} has now."),
        ("How many {obj} does {who} have now?", "How many {obj} does {who} have in the end?"),
    ),
    _Template(
        "bakery", NAMES, _FOODS,
        ("{who} bakes {n} {obj}.", "{who} has {n} {obj} on a tray."),
        ("{who} bakes {k} trays of {m} {obj}.", "{who} buys {k} boxes of {m} {obj}."),
        ("bakes {n} more", "bakes {n} more {obj}", "gets {n} {obj} from {other}"),
        ("sells {n}", "sells {n} {obj} to {other}", "eats {n} of them",
         "gives {n} {obj} to {other}"),
        ("{other} bakes {k} times as many {obj} as {who} has.",),
        ("How many {obj} does {who} have now?", "How many {obj} does {who} have in the end?"),
    ),
    _Template(
        "money", NAMES, ("dollars",),
        ("{who} has {n} dollars.", "{who} saves {n} dollars in a piggy bank."),
        ("{who} earns {m} dollars a day for {k} days.",
         "{who} gets {k} coins worth {m} dollars each."),
        ("earns {n} dollars", "gets {n} dollars from {other}", "finds {n} dollars on the street"),
        ("spends {n} dollars on a book", "spends {n} dollars", "pays {other} {n} dollars",
         "lends {n} dollars to {other}"),
        ("{other} has {k} times as much money as {who}.",
         "{other} has {k} times as many dollars as {who}."),
        ("How many dollars does {who} have now?", "How much money, in dollars, does {who} have?"),
    ),
    _Template(
        "game", NAMES, ("points",),
        ("{who} scores {n} points in a game.", "{who} has {n} points."),
        ("{who} scores {m} points in each of {k} rounds.",),
        ("scores {n} more points", "wins {n} points in the next round",
         "gets a bonus of {n} points"),
        ("loses {n} points for a foul", "loses {n} points", "spends {n} points on a hint"),
        ("{other} scores {k} times as many points as {who}.",
         "{other} has {k} times as many points as {who} has now."),
        ("How many points does {who} have now?", "What is {who}'s score now?"),
    ),
    _Template(
        "bus", _BUSES, ("passengers",),
        ("{who} has {n} passengers.", "There are {n} passengers on {who}."),
        ("{who} picks up {k} groups of {m} passengers.",),
        ("picks up {n} passengers", "picks up {n} more passengers at the next stop"),
        ("drops off {n} passengers", "lets {n} passengers off at the market"),
        ("{other} carries {k} times as many passengers as {who}.",),
        ("How many passengers are on {who} now?",),
    ),
    _Template(
        "garden", NAMES, _PLANTS,
        ("{who} plants {n} {obj}.", "{who} has {n} {obj} in the garden."),
        ("{who} plants {k} rows of {m} {obj}.",),
        ("plants {n} more", "plants {n} more {obj}", "gets {n} {obj} from {other}"),
        ("picks {n} of them", "gives {n} {obj} to {other}", "loses {n} {obj} to the rabbits"),
        ("{other} grows {k} times as many {obj} as {who}.",),
        ("How many {obj} does {who} have now?",),
    ),
    _Template(
        "rooms", _ROOMS, ("children",),
        ("There are {n} children in {who}.", "{who} has {n} children in it."),
        ("{k} groups of {m} children walk into {who}.",),
        ("welcomes {n} more children", "fills up with {n} more children"),
        ("sends {n} children home", "sees {n} children leave"),
        ("{other} has {k} times as many children as {who}.",),
        ("How many children are in {who} now?",),
    ),
)  # fmt: skip
_TEMPLATES_BY_ID = {template.id: template for template in _TEMPLATES}
TEMPLATE_IDS = tuple(_TEMPLATES_BY_ID)


@dataclass(frozen=True)
class ArithmeticConfig:
    """Difficulty and layout knobs of the arithmetic task."""

    min_steps: int = 2
    """fewest equations in a solution"""
    max_steps: int = 4
    """most equations in a solution"""
    max_operand: int = 20
    """largest number added, removed or started from (the smallest is 2)"""
    max_multiplier: int = 5
    """largest "k times as many" or "k packs"; below 2 there is no multiplication"""
    templates: tuple[str, ...] = TEMPLATE_IDS
    """the stories to draw from, by id"""
    distractors: bool = True
    """insert irrelevant sentences between the problem's sentences"""
    max_preamble_sentences: int = 2
    """most irrelevant sentences before the problem (drawn from 0 up to this)"""
    max_distractors: int = 2
    """most distractor sentences in one problem (drawn from 0 up to this)"""

    def __post_init__(self):
        unknown = sorted(set(self.templates) - set(TEMPLATE_IDS))
        if unknown or not self.templates:
            raise UsageError(
                f"templates must be a non-empty subset of {TEMPLATE_IDS}, got {self.templates}"
            )
        if not 1 <= self.min_steps <= self.max_steps:
            raise UsageError(
                f"need 1 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}"
            )
        if self.max_operand < _MIN_OPERAND:
            raise UsageError(f"max_operand must be at least {_MIN_OPERAND}")
        if self.max_preamble_sentences < 0 or self.max_distractors < 0:
            raise UsageError("max_preamble_sentences and max_distractors must be >= 0")


@dataclass(frozen=True)
class _Step:
    operation: str  # "+", "-" or "*"
    operand: int
    text: str  # a predicate of the holder for + and -, a whole sentence for *
    holder: str  # who holds the count after this step
    mentions: str | None  # the name the text brings in, if any


@dataclass(frozen=True)
class _Content:
    key: str  # canonical content: template, names, numbers, operations; no wording, no layout
    sentences: tuple[str, ...]  # the problem's own sentences, the question last
    plan: Plan
    names: tuple[str, ...]  # everyone the problem mentions, kept out of the distractors


def generate(config: ArithmeticConfig, split: str, n: int, seed: int) -> list[Problem]:
    """n distinct problems of one split; the same arguments always give the same list."""
    return [problem for problem, _ in generate_with_plans(config, split, n, seed)]


def generate_with_plans(config: ArithmeticConfig, split: str, n: int,
                        seed: int) -> list[tuple[Problem, Plan]]:
    """generate(), with each problem's plan (what every strategy's solution computes)."""
    if split not in SPLITS:
        raise UsageError(f"split must be one of {SPLITS}, got {split!r}")
    content_rng = random.Random(f"arithmetic-content-{seed}")
    # The content stream is shared by all splits (each keeps its own share of it); the layout
    # stream is not, so that problem i of train and of test do not share a layout.
    layout_rng = random.Random(f"arithmetic-layout-{split}-{seed}")
    problems: list[tuple[Problem, Plan]] = []
    seen: set[str] = set()
    misses = 0
    while len(problems) < n:
        content = _draw_content(content_rng, config)
        digest = hashlib.sha256(content.key.encode()).hexdigest()
        if digest in seen or _split_of(digest) != split:
            misses += 1
            if misses >= _MAX_MISSES_IN_A_ROW:
                raise UsageError(
                    f"only {len(problems)} distinct {split} problems found for "
                    f"{config}; ask for fewer or loosen the config"
                )
            continue
        misses = 0
        seen.add(digest)
        question = _lay_out(layout_rng, config, content)
        plan = content.plan
        problem = Problem(f"arith-{split}-{digest[:12]}", question, str(plan.answer),
                          write_solution(plan, "steps"))
        problems.append((problem, plan))
    return problems


def _split_of(digest: str) -> str:
    bucket = int(digest[:8], 16) % 100
    return next(split for end, split in _SPLIT_BUCKET_ENDS if bucket < end)


def _draw_content(rng: random.Random, config: ArithmeticConfig) -> _Content:
    template = _TEMPLATES_BY_ID[rng.choice(config.templates)]
    obj = rng.choice(template.nouns)
    n_steps = rng.randint(config.min_steps, config.max_steps)
    holders = [rng.choice(template.holders)]
    opening, start, packs = _draw_opening(rng, config, template, holders[0], obj)
    steps, value = [], start
    for _ in range(n_steps - (packs is not None)):
        step = _draw_step(rng, config, template, obj, value, holders)
        value = _apply(step.operation, value, step.operand)
        steps.append(step)
        if step.holder != holders[-1]:
            holders.append(step.holder)
    question = _sentence(rng.choice(template.questions).format(who=holders[-1], obj=obj))
    sentences = (opening, *_step_sentences(rng, steps), question)
    names = tuple(dict.fromkeys([holders[0]] + [s.mentions for s in steps if s.mentions]))
    operations = tuple((s.operation, s.operand) for s in steps)
    key = repr((template.id, names, packs or (start,), operations))
    return _Content(key, sentences, Plan(holders[0], start, packs, operations), names)


def _draw_opening(rng, config, template, holder, obj):
    """The first sentence, the count it states, and (k, m) when it is "k packs of m"."""
    if template.packs and config.max_multiplier >= 2 and rng.random() < _PACK_OPENING_RATE:
        k = rng.randint(2, config.max_multiplier)
        m = rng.randint(_MIN_OPERAND, config.max_operand)
        opening = rng.choice(template.packs).format(who=holder, k=k, m=m, obj=obj)
        return _sentence(opening), k * m, (k, m)
    start = rng.randint(_MIN_OPERAND, config.max_operand)
    opening = rng.choice(template.starts).format(who=holder, n=start, obj=obj)
    return _sentence(opening), start, None


def _draw_step(rng, config, template, obj, value: int, holders: list[str]) -> _Step:
    """One +, - or * step that keeps the count a non-negative integer of modest size."""
    holder = holders[-1]
    newcomers = [h for h in template.holders if h not in holders]
    operations = ["+"]
    if value >= _MIN_OPERAND:
        operations.append("-")
    # Multiplying only small counts keeps values near max_operand * max_multiplier.
    if config.max_multiplier >= 2 and _MIN_OPERAND <= value <= config.max_operand and newcomers:
        operations.append("*")
    operation = rng.choices(operations, [_OPERATION_WEIGHTS[o] for o in operations])[0]
    if operation == "*":
        k = rng.randint(2, config.max_multiplier)
        other = rng.choice(newcomers)
        text = rng.choice(template.multiples).format(
            who=holder, other=other, k=_TIMES_WORDS.get(k, str(k)), obj=obj
        )
        return _Step("*", k, _sentence(text), other, other)
    bystander = rng.choice([h for h in template.holders if h != holder])
    if operation == "+":
        operand = rng.randint(_MIN_OPERAND, config.max_operand)
        phrase = rng.choice(template.gains)
    else:
        operand = rng.randint(_MIN_OPERAND, min(config.max_operand, value))
        phrase = rng.choice(template.losses)
    text = phrase.format(n=operand, obj=obj, other=bystander)
    return _Step(operation, operand, text, holder, bystander if "{other}" in phrase else None)


def _step_sentences(rng: random.Random, steps: list[_Step]) -> list[str]:
    """Sentences for the steps, sometimes two gains or losses joined by "and"."""
    sentences = []
    i = 0
    while i < len(steps):
        step = steps[i]
        if step.operation == "*":
            sentences.append(step.text)
            i += 1
            continue
        following = steps[i + 1] if i + 1 < len(steps) else None
        if following and following.operation != "*" and rng.random() < _MERGE_RATE:
            sentences.append(_sentence(f"{step.holder} {step.text} and {following.text}."))
            i += 2
        else:
            sentences.append(_sentence(f"{step.holder} {step.text}."))
            i += 1
    return sentences


def _lay_out(rng: random.Random, config: ArithmeticConfig, content: _Content) -> str:
    """The question on one line: preamble, then the problem with distractors between."""
    bystanders = [name for name in NAMES if name not in content.names]
    scene = list(_SCENE_SENTENCES)
    rng.shuffle(scene)
    n_preamble = rng.randint(0, config.max_preamble_sentences)
    preamble = [_fill(rng, text, bystanders) for text in scene[:n_preamble]]
    scene = scene[n_preamble:]
    body = list(content.sentences)
    n_distractors = rng.randint(0, config.max_distractors) if config.distractors else 0
    for _ in range(n_distractors):
        if rng.random() < _NUMBERED_DISTRACTOR_RATE or not scene:
            text = rng.choice(_NUMBERED_SENTENCES)
        else:
            text = scene.pop()
        body.insert(rng.randint(1, len(body) - 1), _fill(rng, text, bystanders))
    return " ".join(preamble + body)


def _fill(rng: random.Random, text: str, bystanders: list[str]) -> str:
    return text.format(person=rng.choice(bystanders), n=rng.randint(2, 40))


def _apply(operation: str, left: int, right: int) -> int:
    return {"+": left + right, "-": left - right, "*": left * right}[operation]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


# The difficulty every command's `--task arithmetic` uses, and the embedded default model is
# trained on: hard enough that a ~3M-parameter model errs under sampling (room for Pass@N),
# small enough that it learns the task, in several strategies, in ~90 CPU minutes.
DEFAULT_TASK = ArithmeticConfig(max_steps=3, max_operand=15, max_multiplier=3,
                               max_preamble_sentences=1)
