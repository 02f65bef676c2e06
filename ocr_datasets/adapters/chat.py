"""The turns of the chat formats' rows (``llama_vision``'s ``messages``, ``vlm``'s ``prompt`` and
``completion``): one user turn with the image and the instruction, one assistant turn with the
transcription."""

from __future__ import annotations

from ..features import List, Value

CONTENT_PART = {"type": Value("string"), "text": Value("string")}
TURNS = List({"role": Value("string"), "content": List(CONTENT_PART)})


def user_turn(instruction: str) -> dict:
    # No system turn: the Mllama template refuses one next to an image. The image part comes
    # first because the image attends only to the text after it. Every content is a list,
    # since one Arrow column cannot hold both strings and lists.
    return {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": instruction}]}


def answer_turn(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def answer_text(turns: list[dict]) -> str:
    """The transcription: the text of the one assistant turn of ``turns``."""
    [answer] = [turn for turn in turns if turn["role"] == "assistant"]
    return answer["content"][0]["text"]


def view_turns(turns: list[dict]) -> list[dict]:
    """``turns`` as the JSONL views show them: an image part without its empty text."""
    return [
        {"role": turn["role"], "content": [_without_empty_text(part) for part in turn["content"]]} for turn in turns
    ]


def _without_empty_text(part: dict) -> dict:
    return {key: value for key, value in part.items() if not (key == "text" and value is None)}
