"""The policy contract's records: chat messages."""

from turngym.agents.base import Message


def test_message_to_dict():
    assert Message("user", "hi").to_dict() == {"role": "user", "content": "hi"}
