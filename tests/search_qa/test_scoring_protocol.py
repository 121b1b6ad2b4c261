import pytest

from turngym.envs.search_qa.protocol import MAX_QUERY_CHARS, parse_action, render_information
from turngym.envs.search_qa.records import Hit, Passage
from turngym.envs.search_qa.scoring import contains_answer, exact_match, f1_score, normalize_answer


def test_normalization_is_squad_style_and_folds_accents():
    assert normalize_answer("The  Sao Tomé, (Capital)!") == "sao tome capital"
    assert normalize_answer("an Apple a day") == "apple day"


def test_exact_match_counts_aliases_and_f1_is_token_overlap():
    golds = ["Grand Turk", "Cockburn Town"]
    assert exact_match("cockburn town.", golds) == 1.0
    assert exact_match("Grand", golds) == 0.0
    assert f1_score("Grand", golds) == pytest.approx(2 / 3)
    assert f1_score("", golds) == 0.0
    assert exact_match(".fr", [".fr", "fr"]) == 1.0


def test_contains_answer_needs_whole_tokens():
    assert contains_answer("capital: Paris; coordinates", ["Paris"])
    assert not contains_answer("the Parisii tribe", ["Paris"])
    assert not contains_answer("the answer is known", ["no"])


@pytest.mark.parametrize(
    "reply, problem",
    [
        ("I think it is Paris", "neither a <search> nor an <answer>"),
        ("<search>capital of France", "never closed with </search>"),
        ("Paris</answer>", "without an opening <answer>"),
        ("<search>a <search>b</search></search>", "cannot be nested"),
        ("<answer><search>x</search></answer>", "cannot be nested"),
        ("<search>x <information>fake</information></search>", "cannot be nested"),
        ("<search>   </search>", "search query was empty"),
        ("<answer>\n</answer>", "answer was empty"),
    ],
)
def test_malformed_replies_are_invalid_with_a_reason(reply, problem):
    parsed = parse_action(reply)
    assert parsed.kind == "invalid"
    assert problem in parsed.problem


def test_first_action_wins_and_the_rest_is_reported():
    reply = "".join(f"<search>query {i}</search>" for i in range(50))
    parsed = parse_action(reply)
    assert (parsed.kind, parsed.content, parsed.ignored_actions) == ("search", "query 0", 49)
    assert "49 other" in parsed.note
    assert parse_action("<think>hmm</think> <answer> Paris </answer>").content == "Paris"
    assert parse_action("<ANSWER>x</ANSWER>").kind == "answer"


def test_long_queries_are_cut_with_a_note():
    parsed = parse_action("<search>" + "word " * 500 + "</search>")
    assert parsed.kind == "search" and len(parsed.content) == MAX_QUERY_CHARS
    assert "cut" in parsed.note


def test_information_block_uses_search_r1_layout():
    hits = [Hit(Passage("a", "T1", "text one"), 2.0), Hit(Passage("b", "T2", "x" * 50), 1.0)]
    block = render_information(hits, max_chars=10)
    assert block.startswith("\n\n<information>Doc 1(Title: T1) text one\nDoc 2(Title: T2) xxxxxxxxxx …</information>")
    assert "No passage matched" in render_information([])


def test_first_action_matches_search_r1_regex_on_random_replies():
    import random
    import re

    from turngym.envs.search_qa.protocol import _first_action

    regex = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL | re.IGNORECASE)
    rng = random.Random(0)
    parts = ["<search>", "</search>", "<answer>", "</answer>", "<SEARCH>", "a", " b "]
    for _ in range(5000):
        reply = "".join(rng.choice(parts) for _ in range(rng.randint(0, 8)))
        m, ours = regex.search(reply), _first_action(reply)
        assert (m is None) == (ours is None), reply
        if m:
            assert (m.group(1).lower(), m.group(2), m.end()) == (ours.kind, ours.content, ours.end), reply


def test_replies_full_of_unclosed_tags_are_rejected():
    # the regex backtracks quadratically here (~30 s); the parser is linear
    assert "never closed" in parse_action("<search>" * 24_000).problem
    assert "never closed" in parse_action("<answer>" * 12_000 + "<search>" * 12_000).problem
