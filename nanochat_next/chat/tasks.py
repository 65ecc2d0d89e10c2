"""Chat tasks generated offline: conversations with a known answer and a checker, in the spirit of nanochat's
tasks/spellingbee.py, sized for a tiny model to learn in CPU minutes.

- ``spelling``: "Spell the word apple" -> ``a-p-p-l-e``, checked by equality; a constant answer scores ~0;
- ``letters``: "How many p are in apple?" -> ``0``..``3``, a quarter of the questions each, checked by the first
  integer of the reply; a constant answer scores 1/4;
- ``arith``: "What is 23 + 58?" -> ``81``, checked by the first integer; a constant answer scores a few percent
  (answers -99..198 repeat by coincidence; chance counts as 0, as for nanochat's GSM8K);
- ``identity``: "Who are you?" -> the introduction, or (half the questions) "What colour is the sky?" -> a short
  answer, checked by naming nanochat-next exactly when asked who it is; a constant answer scores 1/2;
- ``compare`` (multiple choice): "Which number is larger? A. 23 B. 58" -> ``A`` or ``B``, half each, checked by
  the letter (categorically: by its logit); a constant answer scores 1/2.

Honest by construction: the answers a constant reply could exploit are balanced (``letters`` draws its count
first, ``compare`` alternates the letter, ``identity`` mixes other questions in), so no constant answer scores above
the task's ``chance`` (tests/chat/test_tasks.py checks every task on its test split), and chat-eval prints the
majority-answer baseline beside every accuracy. Everything is a function of ``(split, count, seed)``: the same call
gives the same examples. Train and test are disjoint: a question belongs to one split by a hash of its key (the
word, the numbers, the phrasing), so no test question is ever trained on; ``distinct`` questions are counted
(``identity`` has few phrasings and repeats them). Words come from the tinyshakespeare corpus (in the cache: no
download beyond the corpus itself), lower-case, 3 to 8 letters.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from nanochat_next.errors import UserError

SPLITS = ("train", "test")
TEST_SHARE = 5  # one key in 5 is a test key
IDENTITY = "I am nanochat-next, a small language model trained from scratch."
IDENTITY_QUESTIONS = ["Who are you?", "What are you?", "What is your name?", "Tell me about yourself.",
                      "Introduce yourself.", "Which model are you?", "Who made you?", "Are you a person?",
                      "what are you", "who are you", "Hello, who am I talking to?", "What should I call you?",
                      "Who am I speaking with?", "Are you a chatbot?", "Can you tell me who you are?",
                      "What kind of program are you?", "Are you human?", "What's your name?", "Who is this?",
                      "Please introduce yourself", "Identify yourself.", "Are you an AI?", "What model is this?",
                      "Hi! Who are you?", "hey, what are you?", "Do you have a name?", "Who am I chatting with?",
                      "Describe yourself.", "Are you a language model?", "Name yourself.", "What do you call yourself?",
                      "Who built you?", "Which assistant is this?", "Say who you are.", "WHO ARE YOU?",
                      "tell me who you are"]
# questions that are not about the assistant, for ``identity``: it must introduce itself only when asked who it is
OTHER_QUESTIONS = [("What colour is the sky?", "Blue."), ("What is the opposite of hot?", "Cold."),
                   ("Name a fruit.", "An apple."), ("What do cows drink?", "Water."), ("Is fire cold?", "No."),
                   ("How many legs does a cat have?", "Four."), ("What is the first letter of the alphabet?", "A."),
                   ("Say hello.", "Hello!"), ("What is frozen water?", "Ice."), ("Which is bigger, a mouse or a "
                   "horse?", "A horse."), ("What colour is grass?", "Green."), ("Do fish swim?", "Yes."),
                   ("What comes after Monday?", "Tuesday."), ("Name a colour.", "Red."), ("Is the sun hot?", "Yes."),
                   ("What animal barks?", "A dog."), ("What do bees make?", "Honey."), ("Is ice hot?", "No."),
                   ("How many days are in a week?", "Seven."), ("What is the opposite of up?", "Down."),
                   ("Name a season.", "Winter."), ("What shines at night?", "The moon."),
                   ("What do we breathe?", "Air."), ("Which is heavier, a feather or a stone?", "A stone."),
                   ("What colour is snow?", "White."), ("Can birds fly?", "Yes."), ("Say goodbye.", "Goodbye!"),
                   ("What is two plus two?", "Four."), ("Where do fish live?", "In water."),
                   ("What is the opposite of big?", "Small.")]
INTEGER = re.compile(r"-?\d+")


def split_of(key: str) -> str:
    """The split a question belongs to, from a hash of its key (stable across runs and machines)."""
    digest = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16)
    return "test" if digest % TEST_SHARE == 0 else "train"


def conversation(task: str, question: str, answer: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
            "task": task, "answer": answer, **extra}


@dataclass(frozen=True)
class Task:
    name: str
    make: Callable[[random.Random, list[str], int], tuple[str, str, str]]  # (rng, words, index) -> (key, q, a)
    check: Callable[[str, str], bool]  # (reply, answer) -> correct?
    choices: tuple[str, ...] = ()  # a multiple-choice task: the answer is one of these letters
    chance: float = 0.0  # what a constant answer scores on the balanced test split (0: an open answer)

    def examples(self, split: str, count: int, seed: int, words: list[str]) -> list[dict]:
        """``count`` examples of ``split``, the same for the same seed; distinct questions while the split has
        enough of them (identity has a handful: it repeats)."""
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} ({', '.join(SPLITS)})")
        rng = random.Random(f"{self.name}/{split}/{seed}")
        out: list[dict] = []
        seen: set[str] = set()
        for attempt in range(count * 50):  # rejection sampling: the other split's keys are skipped
            # the example's index picks its class (a count, a letter, a kind of question): balanced by construction
            key, question, answer = self.make(rng, words, len(out))
            if split_of(key) != split or (key in seen and attempt < count * 10):
                continue
            seen.add(key)
            out.append(conversation(self.name, question, answer, choices=list(self.choices)))
            if len(out) == count:
                return out
        raise UserError(f"could not draw {count} {split} examples of the {self.name} task")


def make_spelling(rng: random.Random, words: list[str], index: int) -> tuple[str, str, str]:
    word = rng.choice(words)
    template = rng.choice(["Spell the word {w}", "How do you spell {w}?", "Spell {w}", "spell {w} letter by letter"])
    return word, template.format(w=word), "-".join(word)


LETTER_COUNTS = (0, 1, 2, 3)  # the answers of ``letters``, a quarter each


def make_letters(rng: random.Random, words: list[str], index: int) -> tuple[str, str, str]:
    """A word and a letter that occurs exactly ``LETTER_COUNTS[index % 4]`` times in it: the count is drawn first,
    so "1" (most letters occur once) is no better a guess than any other answer."""
    count = LETTER_COUNTS[index % len(LETTER_COUNTS)]
    while True:
        word = rng.choice(words)
        letters = [c for c in "abcdefghijklmnopqrstuvwxyz" if word.count(c) == count]
        if letters:
            letter = rng.choice(letters)
            break
    template = rng.choice(["How many {l} are in {w}?", "Count the letter {l} in {w}", "How many times does {l} "
                           "appear in {w}?"])
    return f"{word}/{letter}", template.format(l=letter, w=word), str(count)


def make_arith(rng: random.Random, words: list[str], index: int) -> tuple[str, str, str]:
    a, b, op = rng.randrange(100), rng.randrange(100), rng.choice("+-")
    template = rng.choice(["What is {a} {op} {b}?", "{a} {op} {b} =", "Compute {a} {op} {b}"])
    return f"{a}{op}{b}", template.format(a=a, b=b, op=op), str(a + b if op == "+" else a - b)


def make_identity(rng: random.Random, words: list[str], index: int) -> tuple[str, str, str]:
    """Every other example is not about the assistant: introducing itself to everything scores 1/2, not 1."""
    if index % 2 == 0:
        question = rng.choice(IDENTITY_QUESTIONS)
        return question, question, IDENTITY
    question, answer = rng.choice(OTHER_QUESTIONS)
    return question, question, answer


NAME = re.compile(r"\bnanochat-next\b")  # the name as a word: RL found "I am nanochat-nextle." rewarded by a substring


def check_identity(reply: str, answer: str) -> bool:
    """Names nanochat-next (the whole word, not a garbled "nanochat-nextle") exactly when the question was who it is."""
    return bool(NAME.search(reply)) == (answer == IDENTITY)


def make_compare(rng: random.Random, words: list[str], index: int) -> tuple[str, str, str]:
    """The larger number is at A or B alternately: always answering A scores 1/2."""
    small, large = sorted(rng.sample(range(100), 2))
    a, b = (large, small) if index % 2 == 0 else (small, large)
    return f"{a}>{b}", f"Which number is larger?\nA. {a}\nB. {b}", "A" if a > b else "B"


def first_integer(reply: str, answer: str) -> bool:
    match = INTEGER.search(reply)
    return match is not None and match.group() == answer


TASKS = {
    "spelling": Task("spelling", make_spelling, lambda reply, answer: reply.strip() == answer),
    "letters": Task("letters", make_letters, first_integer, chance=1 / len(LETTER_COUNTS)),
    "arith": Task("arith", make_arith, first_integer),  # open answers (-99..198), chance 0 as nanochat's GSM8K
    "identity": Task("identity", make_identity, check_identity, chance=0.5),
    "compare": Task("compare", make_compare, lambda reply, answer: reply.strip()[:1] == answer, ("A", "B"), 0.5),
}


def majority_baseline(examples: list[dict], check: Callable[[str, str], bool]) -> tuple[float, str]:
    """(the best accuracy a constant reply reaches on these examples, that reply): each example's answer tried as
    the reply to every example (the checker decides)."""
    best, best_reply = 0.0, ""
    for reply in dict.fromkeys(e["answer"] for e in examples):
        score = sum(check(reply, e["answer"]) for e in examples) / max(len(examples), 1)
        if score > best:
            best, best_reply = score, reply
    return best, best_reply


def task(name: str) -> Task:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r} ({', '.join(TASKS)})")
    return TASKS[name]


def corpus_words(text: str, min_len: int = 3, max_len: int = 8) -> list[str]:
    """The distinct lower-case alphabetic words of a text, sorted (a word list that needs no download)."""
    words = sorted({w for w in re.findall(r"[a-z]+", text.lower()) if min_len <= len(w) <= max_len})
    if len(words) < 50:
        raise UserError(f"the corpus has only {len(words)} distinct words of {min_len}-{max_len} letters; the "
                        "spelling and letters tasks need at least 50")
    return words


def default_words() -> list[str]:
    from nanochat_next.corpus import corpus_path, read_text

    return corpus_words(read_text(corpus_path("tinyshakespeare")))
