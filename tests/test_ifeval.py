"""IFEval's 25 verifiable instructions on hand-made answers, strict and loose (Zhou et al., 2023),
and `evaluate.py ifeval --responses` on rows in IFEval's own schema."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from evals import ifeval
from posttrain import checkers

FOLLOWS = [  # (instruction id, kwargs, an answer that follows it, one that does not)
    ("keywords:existence", {"keywords": ["river", "bridge"]}, "The bridge spans the River.", "The bridge is old."),
    ("keywords:frequency", {"keyword": "tea", "frequency": 3, "relation": "at least"}, "Tea, tea and more TEA.",
     "Tea and coffee."),
    ("keywords:frequency", {"keyword": "tea", "frequency": 2, "relation": "less than"}, "Tea is fine.", "Tea tea."),
    ("keywords:forbidden_words", {"forbidden_words": ["very", "really"]}, "It is quite good; everyone agrees.",
     "It is Really good."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
     "Zebras zigzag at the zoo.", "Zebras run."),
    ("language:response_language", {"language": "de"},
     "Der Fluss fließt langsam durch die alte Stadt, und die Brücke ist sehr schön.",
     "The river flows slowly through the old town, and the bridge is very beautiful."),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "One. Two.",
     "One. Two. Three. Four."),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"},
     "Dr. Smith came at 3.5 p.m. sharp. He left early!", "Dr. Smith came at 3.5 in the afternoon."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First part.\n***\nSecond part.",
     "First part.\n***\n\n***\nSecond part."),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "Only four words here.",
     "This answer has far too many words in it."),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
     "Rivers are long.\n\nHowever, some are short.", "Rivers are long.\n\nBut some are short."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], meet me at [address].",
     "Dear [name], meet me there."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Thanks for reading.\nP.S. Bring snacks.",
     "Thanks for reading."),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Done.\n\nP.P.S. One more thing.", "Done. PS."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Items:\n* apples\n* pears", "Items:\n* apples"),
    ("detectable_format:constrained_response", None, "My answer is yes.", "Yes, definitely."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*first* and **second**",
     "only *one* here"),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "SECTION 1\nIntro.\nSECTION 2\nBody.", "SECTION 1\nIntro only."),
    ("detectable_format:json_format", None, '```json\n{"a": 1}\n```', '{"a": 1,}'),
    ("detectable_format:title", None, "<<A River Story>>\nOnce upon a time.", "A River Story\nOnce upon a time."),
    ("combination:two_responses", None, "First answer.\n******\nSecond answer.", "First answer.\n******\nFirst answer."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a haiku about rain."},
     "Write a haiku about rain. Soft rain on the roof.", "Soft rain on the roof."),
    ("startend:end_checker", {"end_phrase": "Is there anything else I can help with?"},
     "Here it is. Is there anything else I can help with?", "Here it is. Anything else?"),
    ("startend:quotation", None, '"A quoted answer."', 'A "partly" quoted answer.'),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "This is VERY IMPORTANT news.", "This is Very important news."),
    ("change_case:english_capital", None, "THE RIVER FLOWS SLOWLY THROUGH THE OLD TOWN AND UNDER THE BRIDGE.",
     "The river flows slowly through the old town and under the bridge."),
    ("change_case:english_lowercase", None, "the river flows slowly through the old town and under the bridge.",
     "The river flows slowly through the old town and under the bridge."),
    ("punctuation:no_comma", None, "No commas here at all.", "Yes, a comma."),
]


def test_every_instruction_type_has_a_case():
    assert {case[0] for case in FOLLOWS} == set(checkers.CHECKERS) and len(checkers.CHECKERS) == 25


@pytest.mark.parametrize("instruction, kwargs, good, bad", FOLLOWS, ids=[f"{c[0]}-{i}" for i, c in enumerate(FOLLOWS)])
def test_each_checker_on_hand_made_answers(instruction, kwargs, good, bad):
    assert checkers.follows(instruction, good, kwargs)
    assert not checkers.follows(instruction, bad, kwargs)


def test_loose_accepts_what_a_first_line_a_last_line_or_asterisks_break():
    rows = [
        # a chatty first line breaks "starts with the prompt" strictly, not loosely
        {"key": 1, "prompt": "p", "instruction_id_list": ["combination:repeat_prompt"],
         "kwargs": [{"prompt_to_repeat": "Name a river."}], "response": "Sure! Here you go:\nName a river. The Nile."},
        # a sign-off last line breaks the end phrase strictly, not loosely
        {"key": 2, "prompt": "p", "instruction_id_list": ["startend:end_checker"], "kwargs": [{"end_phrase": "Peace."}],
         "response": "Go well. Peace.\nBest wishes"},
        # Markdown bold around the title breaks nothing strictly... but asterisks around a JSON block do
        {"key": 3, "prompt": "p", "instruction_id_list": ["detectable_format:json_format"], "kwargs": [{}],
         "response": '**{"a": 1}**'},
        # followed neither way
        {"key": 4, "prompt": "p", "instruction_id_list": ["punctuation:no_comma", "detectable_format:title"],
         "kwargs": [{}, {}], "response": "a, b\nc, d"},
    ]
    result = ifeval.score(rows)
    verdicts = {r["key"]: (r["follow_all_instructions"], r["follow_all_instructions_loose"]) for r in result["rows"]}
    assert verdicts == {1: (False, True), 2: (False, True), 3: (False, True), 4: (False, False)}
    assert (result["prompt_strict"], result["prompt_loose"]) == (0.0, 0.75)
    assert (result["instruction_strict"], result["instruction_loose"]) == (0.0, 0.6)
    assert result["n"] == 4 and result["instructions"] == 5
    assert result["ci95"]["prompt_loose"][0] < 0.75 < result["ci95"]["prompt_loose"][1]
    assert result["avg_strict"] == 0.0 and result["ci95"]["avg_strict"] == [0.0, 0.0]  # nothing strict to resample
    half = [{"key": k, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}],
             "response": "a b" if k % 2 else "a, b"} for k in range(40)]
    mixed = ifeval.score(half)
    low, high = mixed["ci95"]["avg_strict"]  # half the prompts follow: 50 points, an interval around it
    assert mixed["avg_strict"] == 50.0 and 30 < low < 50 < high < 70
    assert ifeval.score(half)["ci95"] == mixed["ci95"]  # seeded: a rerun gives the same interval
    assert result["by_instruction"]["punctuation:no_comma"] == {"strict": 0.0, "loose": 0.0, "n": 1}
    # in the reference's order: as is, without *, then without the first / last / both lines, each without * too
    assert checkers.loose_variants("**a**\nb\nc") == ["**a**\nb\nc", "a\nb\nc", "b\nc", "**a**\nb", "b", "b\nc", "a\nb", "b"]


def test_an_empty_response_follows_nothing_and_ifeval_kwargs_padding_is_dropped():
    assert not checkers.follows("punctuation:no_comma", "   ")
    # IFEval's input_data.jsonl pads every kwargs dict with the other instructions' arguments as None
    assert checkers.follows("keywords:existence", "a river", {"keywords": ["river"], "num_words": None, "relation": None})
    with pytest.raises(checkers.IFEvalError, match="unknown instruction id"):
        checkers.follows("keywords:nonsense", "text")


def test_evaluate_responses_on_ifeval_schema_rows(tmp_path):
    rows = [{"key": 1000 + i, "prompt": f"Answer {i} without commas.", "instruction_id_list": [instruction],
             "kwargs": [kwargs or {}], "response": good if i % 2 == 0 else bad}
            for i, (instruction, kwargs, good, bad) in enumerate(FOLLOWS)]
    path = tmp_path / "input_data_with_responses.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "ifeval", "--responses", str(path),
                          "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)["ifeval"]["responses"]
    assert {"prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose", "n", "ci95", "by_instruction",
            "rows"} <= set(res)
    followed = {r["key"]: r["follow_all_instructions"] for r in res["rows"]}
    assert followed == {1000 + i: i % 2 == 0 for i in range(len(FOLLOWS))}
    assert res["n"] == len(FOLLOWS) and res["prompt_strict"] == pytest.approx(sum(i % 2 == 0 for i in range(len(FOLLOWS))) / len(FOLLOWS))
    assert {"key", "follow_all_instructions", "follow_all_instructions_loose", "follow_instruction_list"} <= set(res["rows"][0])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"key": 1, "prompt": "x", "instruction_id_list": ["no:such"], "kwargs": [{}]}\n')
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "ifeval", "--responses", str(broken)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and f"{broken}:1: unknown instruction id" in bad.stderr


def test_the_held_out_set_covers_every_instruction_type_and_is_reproducible():
    import importlib.util
    from collections import Counter

    path = ROOT / "data" / "ifeval_heldout.jsonl"
    rows = checkers.read_rows(path)
    counts = Counter(i for row in rows for i in row["instruction_id_list"])
    assert len(rows) >= 150 and set(counts) == set(checkers.CHECKERS) and min(counts.values()) >= 6
    for row in rows:  # every row's kwargs fit its checkers
        checkers.check_row({**row, "response": "an answer"})
    spec = importlib.util.spec_from_file_location("make_ifeval_heldout", ROOT / "data" / "make_ifeval_heldout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.rows() == [json.loads(line) for line in path.read_text().splitlines()]  # the file is what the script writes
    training = " ".join(f.read_text() for folder in ("sft", "preference", "synth") for f in (ROOT / "data" / folder).glob("*.jsonl"))
    tasks = {row["prompt"].split(". ")[0] for row in rows}
    assert len(tasks) == 30 and not [t for t in tasks if t in training]  # held out: no task is in the training data


def test_an_answer_that_echoes_its_prompt_is_counted_apart():
    """A base continuing its prompt passes 'include the keywords' by repeating them: IFEval's own
    scores keep it; prompt_loose_no_echo does not."""
    prompt = "Describe a harbour. Include the keywords river and lantern in the response."
    rows = [{"key": 1, "prompt": prompt, "instruction_id_list": ["keywords:existence"],
             "kwargs": [{"keywords": ["river", "lantern"]}], "response": prompt + " " + prompt},
            {"key": 2, "prompt": prompt, "instruction_id_list": ["keywords:existence"],
             "kwargs": [{"keywords": ["river", "lantern"]}], "response": "A lantern glows where the river meets the sea."}]
    result = ifeval.score(rows)
    assert result["prompt_loose"] == 1.0 and result["prompt_loose_no_echo"] == 0.5 and result["echoed"] == 1
    assert [r["echoes_prompt"] for r in result["rows"]] == [True, False] and result["rows"][1]["response"].startswith("A lantern")
    assert not ifeval.echoes(prompt, "")


def test_an_ifeval_run_that_stops_resumes_from_its_answers_file(tmp_path, tiny_registry, capsys):
    """--answers FILE: each answer is appended as its batch ends; a second run takes them and asks
    only for the rest, with the same result; answers made with other settings are refused."""
    import importlib.util

    from posttrain.errors import WorkbenchError

    spec = importlib.util.spec_from_file_location("evaluate_script", ROOT / "scripts" / "evaluate.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(line + "\n" for line in (ROOT / "data" / "ifeval_heldout.jsonl").read_text().splitlines()[:3]))
    answers = tmp_path / "answers.jsonl"
    argv = ["--registry", str(tiny_registry.root), "--base", "tiny", "--models", "ad-a", "tiny", "--prompts", str(prompts),
            "--max-new-tokens", "4", "--no-4bit", "--batch-rows", "2", "--answers", str(answers), "--json"]

    def run() -> dict:
        assert script.run_ifeval(argv) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    first = run()
    lines = answers.read_text().splitlines()
    assert len(lines) == 6 and {json.loads(line)["model"] for line in lines} == {"ad-a", "tiny"}
    assert first["settings"]["resumed_answers"] == 0
    answers.write_text("\n".join(lines[:4]) + "\n")  # stopped after two of three batches
    second = run()
    assert second["settings"]["resumed_answers"] == 4 and len(answers.read_text().splitlines()) == 6
    assert second["ifeval"] == first["ifeval"]
    third = run()
    assert third["settings"]["resumed_answers"] == 6 and third["ifeval"] == first["ifeval"]
    lines = answers.read_text().splitlines()
    answers.write_text("\n".join(lines[:5]) + "\n" + lines[5][:40])  # killed while writing its last answer
    fourth = run()
    assert fourth["settings"]["resumed_answers"] == 5 and fourth["ifeval"] == first["ifeval"]
    assert len(answers.read_text().splitlines()) == 6 and run()["settings"]["resumed_answers"] == 6
    with pytest.raises(WorkbenchError, match="made with other settings"):
        script.run_ifeval([*argv[:argv.index("--max-new-tokens") + 1], "8", *argv[argv.index("--max-new-tokens") + 2:]])
