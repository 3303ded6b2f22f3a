"""A tiny random-init BERT classifier with dict batches: a ``datasets.Dataset``, a dict of
tensors, and a padding collator, each as the user first writes it (no wrapper, no loss=).

Glue left to the user: none with luzwidget's collate (the model's own loss is used, the
labels reach the metrics, the text column is left out by the call rule); one line with a
padding collator (``remove_columns("text")``: it cannot pad strings).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as nnf

import luzwidget as lw
from tests.workloads.battery import (
    Workload,
    check_dashboard,
    check_fit,
    check_rewind,
    check_save_load,
    check_step_and_layers,
    close,
)

datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")

VOCAB, LENGTH, N = 40, 8, 44


def make_bert() -> torch.nn.Module:
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=LENGTH,
        num_labels=3,
        hidden_dropout_prob=0.1,
    )
    return transformers.BertForSequenceClassification(config)


def rows(n: int = N, seed: int = 0) -> dict[str, list]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, LENGTH), generator=g)
    return {
        "text": [f"sentence {i}" for i in range(n)],
        "input_ids": ids.tolist(),
        "attention_mask": torch.ones(n, LENGTH, dtype=torch.long).tolist(),
        "label": (ids[:, 0] % 3).tolist(),
    }


def workload() -> Workload:
    train = datasets.Dataset.from_dict(rows())
    valid = datasets.Dataset.from_dict(rows(12, seed=1))
    spec = lw.setup(make_bert, optimizer=torch.optim.AdamW, metrics=lw.metrics.Accuracy())
    return Workload(
        spec.set_opt_hparams(lr=1e-3),
        train,
        {"valid_data": valid, "dataloader_options": {"batch_size": 8}},
    )


def test_fit_with_a_datasets_dataset_and_no_loss(tmp_path: Path) -> None:
    w = workload()
    fitted = check_fit(w)
    assert set(fitted.records["metrics"]["valid"][0]) == {"loss", "acc"}
    valid = w.fit["valid_data"]
    logits = fitted.predict(valid)
    assert logits.shape == (12, 3)  # predict() returns the logits
    # evaluate, by hand: the mean cross-entropy and accuracy over the 12 samples
    labels = torch.tensor(valid["label"])
    evaluation = fitted.evaluate(valid, dataloader_options={"batch_size": 5})  # 5, 5, 2
    assert close(evaluation["loss"], nnf.cross_entropy(logits, labels).item())
    assert close(evaluation["acc"], (logits.argmax(1) == labels).float().mean().item())
    check_save_load(fitted, tmp_path, valid)


def test_a_batch_is_its_own_input_and_its_labels_the_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    w = workload()
    run = check_step_and_layers(w)
    batch = run.ctx.batch
    assert sorted(batch) == ["attention_mask", "input_ids", "label", "text"]
    assert batch["input_ids"].shape == (8, LENGTH)  # lists of ids, stacked per key
    assert run.ctx.target is batch["label"]
    assert type(run.ctx.pred).__name__ == "SequenceClassifierOutput"  # the whole output
    assert run.ctx.loss == run.ctx.pred.loss.detach()
    said = capsys.readouterr().err
    assert "the batch's keys ['text'] are not parameters of BertForSequenceClassification" in said


def test_rewind_is_exact() -> None:
    w = workload()
    check_rewind(w, w.trained())


def test_dashboard_messages() -> None:
    msg = check_dashboard(workload())
    rows = msg["inspector"]["rows"]
    assert "input_ids" in rows["input"]
    assert "logits" in rows["pred"]


def test_a_dict_of_tensors_is_data_too() -> None:
    data = {k: torch.tensor(v) for k, v in rows().items() if k != "text"}
    data["labels"] = data.pop("label")
    spec = lw.setup(make_bert, optimizer=torch.optim.AdamW).set_opt_hparams(lr=1e-3)
    torch.manual_seed(0)
    fitted = spec.fit(data, epochs=1, verbose=False, dataloader_options={"batch_size": 8})
    assert fitted.ctx.iter == N // 8  # training drops the last partial batch
    assert fitted.predict(data).shape == (N, 3)


def test_the_users_padding_collator(tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(35)])
    )
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(vocab))
    g = torch.Generator().manual_seed(0)
    texts = [
        " ".join(f"w{int(i)}" for i in torch.randint(0, 35, (int(n),), generator=g))
        for n in torch.randint(1, 6, (N,), generator=g)
    ]
    ds = datasets.Dataset.from_dict({"text": texts, "label": [i % 3 for i in range(N)]})
    # The one line of glue left: a padding collator cannot pad strings (HF's Trainer
    # drops the columns forward does not take before collating; luzwidget's loader is
    # built before the model, so the user does it, as the HF course does without Trainer).
    ds = ds.map(lambda b: tokenizer(b["text"]), batched=True).remove_columns("text")
    spec = lw.setup(make_bert, optimizer=torch.optim.AdamW).set_opt_hparams(lr=1e-3)
    with pytest.raises(
        lw.StepError,
        match=r"'input_ids' are sequences of different lengths.*DataCollatorWithPadding",
    ):
        spec.fit(ds, epochs=1, verbose=False)
    collator = transformers.DataCollatorWithPadding(tokenizer)
    torch.manual_seed(0)
    fitted = spec.fit(
        ds, epochs=1, verbose=False, dataloader_options={"batch_size": 8, "collate_fn": collator}
    )
    assert fitted.ctx.batch["input_ids"].shape[0] == 8
    assert "labels" in fitted.ctx.batch  # the collator renamed it
