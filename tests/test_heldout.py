"""Held-out likelihoods: the head over labelled positions only, rows batched by length."""

import torch

from conftest import make_tiny_model
from posttrain.chat import IGNORE_INDEX, Example
from posttrain.heldout import label_logprobs, token_logprobs


def tiny(tmp_path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(make_tiny_model(tmp_path / "tiny"))).eval()


def test_label_logprobs_equal_the_full_log_softmax_at_labelled_positions_only(tmp_path):
    model = tiny(tmp_path)
    torch.manual_seed(0)
    ids = torch.randint(3, 60, (3, 9))
    mask = torch.ones_like(ids)
    mask[2, 6:] = 0  # a padded row
    labels = ids.clone()
    labels[:, :4] = IGNORE_INDEX  # the prompt
    labels[2, 6:] = IGNORE_INDEX
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
        ours = label_logprobs(model, ids, mask, labels, max_elements=3 * model.config.vocab_size)  # 3 positions a chunk
    expected = full.gather(-1, labels[:, 1:].clamp(min=0)[..., None]).squeeze(-1)
    labelled = labels[:, 1:] != IGNORE_INDEX
    torch.testing.assert_close(ours[labelled], expected[labelled], rtol=1e-5, atol=1e-5)
    assert (ours[~labelled] == 0).all() and labelled.sum() == 5 + 5 + 2


def test_token_logprobs_keep_the_callers_order_when_batched_by_length(tmp_path):
    model = tiny(tmp_path)
    examples = [Example(list(range(5, 5 + n)), [IGNORE_INDEX] * 2 + list(range(7, 5 + n))) for n in (4, 11, 6, 9, 3)]
    batched = token_logprobs(model, examples, pad_id=0, batch_size=2)
    alone = [token_logprobs(model, [e], pad_id=0, batch_size=1)[0] for e in examples]
    assert [n for _, n in batched] == [2, 9, 4, 7, 1]
    for (s, n), (s_alone, n_alone) in zip(batched, alone):
        assert n == n_alone and abs(s - s_alone) < 1e-4
