"""Chat tasks generated offline: conversations with a known answer and a checker, in the spirit of nanochat's
tasks/spellingbee.py, sized for a tiny model to learn in CPU minutes.

| task | user asks | assistant answers | checked by |
|---|---|---|---|
| ``spelling`` | Spell the word apple | ``a-p-p-l-e`` | the reply equals the answer |
| ``letters`` | How many p are in apple? | ``2`` | the first integer in the reply |
| ``arith`` | What is 23 + 58? | ``81`` | the first integer in the reply |
| ``identity`` | Who are you? | a fixed introduction | the reply names nanochat-next |
| ``compare`` (choice) | Which number is larger? A. 23 B. 58 | ``B`` | the letter; categorically: its logit |

Everything is a function of ``(split, count, seed)``: the same call gives the same examples. Train and test are
disjoint by construction: a question belongs to one split by a hash of its key (the word, the numbers, the
phrasing), so no test question is ever trained on. Words come from the tinyshakespeare corpus (in the cache:
no download beyond the corpus itself), lower-case, 3 to 8 letters.
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
    make: Callable[[random.Random, list[str]], tuple[str, str, str]]  # -> (key, question, answer)
    check: Callable[[str, str], bool]  # (reply, answer) -> correct?
    choices: tuple[str, ...] = ()  # a multiple-choice task: the answer is one of these letters

    def examples(self, split: str, count: int, seed: int, words: list[str]) -> list[dict]:
        """``count`` examples of ``split``, the same for the same seed; distinct questions while the split has
        enough of them (identity has a handful: it repeats)."""
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} ({', '.join(SPLITS)})")
        rng = random.Random(f"{self.name}/{split}/{seed}")
        out: list[dict] = []
        seen: set[str] = set()
        for attempt in range(count * 50):  # rejection sampling: the other split's keys are skipped
            key, question, answer = self.make(rng, words)
            if split_of(key) != split or (key in seen and attempt < count * 10):
                continue
            seen.add(key)
            out.append(conversation(self.name, question, answer, choices=list(self.choices)))
            if len(out) == count:
                return out
        raise UserError(f"could not draw {count} {split} examples of the {self.name} task")


def make_spelling(rng: random.Random, words: list[str]) -> tuple[str, str, str]:
    word = rng.choice(words)
    template = rng.choice(["Spell the word {w}", "How do you spell {w}?", "Spell {w}", "spell {w} letter by letter"])
    return word, template.format(w=word), "-".join(word)


def make_letters(rng: random.Random, words: list[str]) -> tuple[str, str, str]:
    word = rng.choice(words)
    letter = rng.choice(word) if rng.random() < 0.8 else rng.choice("abcdefghijklmnopqrstuvwxyz")
    template = rng.choice(["How many {l} are in {w}?", "Count the letter {l} in {w}", "How many times does {l} "
                           "appear in {w}?"])
    return f"{word}/{letter}", template.format(l=letter, w=word), str(word.count(letter))


def make_arith(rng: random.Random, words: list[str]) -> tuple[str, str, str]:
    a, b, op = rng.randrange(100), rng.randrange(100), rng.choice("+-")
    template = rng.choice(["What is {a} {op} {b}?", "{a} {op} {b} =", "Compute {a} {op} {b}"])
    return f"{a}{op}{b}", template.format(a=a, b=b, op=op), str(a + b if op == "+" else a - b)


def make_identity(rng: random.Random, words: list[str]) -> tuple[str, str, str]:
    question = rng.choice(IDENTITY_QUESTIONS)
    return question, question, IDENTITY


def make_compare(rng: random.Random, words: list[str]) -> tuple[str, str, str]:
    a, b = rng.sample(range(100), 2)
    return f"{a}>{b}", f"Which number is larger?\nA. {a}\nB. {b}", "A" if a > b else "B"


def first_integer(reply: str, answer: str) -> bool:
    match = INTEGER.search(reply)
    return match is not None and match.group() == answer


TASKS = {
    "spelling": Task("spelling", make_spelling, lambda reply, answer: reply.strip() == answer),
    "letters": Task("letters", make_letters, first_integer),
    "arith": Task("arith", make_arith, first_integer),
    "identity": Task("identity", make_identity, lambda reply, answer: "nanochat-next" in reply),
    "compare": Task("compare", make_compare, lambda reply, answer: reply.strip()[:1] == answer, ("A", "B")),
}


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
