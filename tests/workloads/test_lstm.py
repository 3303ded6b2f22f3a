"""An LSTM over padded sequences: ``forward(self, x, lengths)`` packs them; the data is
``((padded, lengths), y)``, or a Dataset of variable-length sequences with the user's
padding ``collate_fn``.

Glue left to the user: none (the collate_fn is the user's own padding, a DataLoader option).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as nnf
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

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


class Tagger(nn.Module):
    def __init__(self, d: int = 3, hidden: int = 8) -> None:
        super().__init__()
        self.lstm = nn.LSTM(d, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.head(h[-1])


def sequences(n: int, seed: int = 0) -> list[tuple[torch.Tensor, int]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(2, 7, (1,), generator=g))
        x = torch.randn(length, 3, generator=g)
        out.append((x, int(x[:, 0].sum() > 0)))
    return out


def padded(n: int, seed: int = 0) -> tuple:
    seqs = sequences(n, seed)
    x = pad_sequence([s for s, _ in seqs], batch_first=True)
    lengths = torch.tensor([len(s) for s, _ in seqs])
    return (x, lengths), torch.tensor([y for _, y in seqs])


def workload() -> Workload:
    spec = lw.setup(Tagger, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam)
    opts = {
        "valid_data": padded(16, 1),
        "dataloader_options": {"batch_size": 8},
    }
    return Workload(spec.set_opt_hparams(lr=1e-2), padded(48), opts, newdata=padded(16, 1))


def test_fit_predict_evaluate_by_hand_and_save_load(tmp_path: Path) -> None:
    fitted = check_fit(workload())
    (x, lengths), y = padded(19, seed=2)
    logits = fitted.predict(((x, lengths),))
    assert logits.shape == (19, 2)
    evaluation = fitted.evaluate(((x, lengths), y), dataloader_options={"batch_size": 8})
    assert close(evaluation["loss"], nnf.cross_entropy(logits, y).item())
    check_save_load(fitted, tmp_path, ((x, lengths),))


def test_step_layers_rewind_and_dashboard() -> None:
    w = workload()
    run = check_step_and_layers(w)
    x, lengths = run.ctx.input
    assert x.shape[0] == lengths.shape[0] == 8
    check_rewind(w, w.trained())
    check_dashboard(w)


def test_variable_length_sequences_with_the_users_collate_fn() -> None:
    def pad(batch: list[tuple[torch.Tensor, int]]) -> tuple:
        xs, ys = zip(*batch, strict=True)
        lengths = torch.tensor([len(x) for x in xs])
        return (pad_sequence(list(xs), batch_first=True), lengths), torch.tensor(ys)

    class Sequences(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self, n: int) -> None:
            self.items = sequences(n)

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return self.items[i]

    spec = lw.setup(Tagger, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam)
    dataset = Sequences(48)
    torch.manual_seed(0)
    fitted = spec.fit(
        dataset, epochs=1, verbose=False, dataloader_options={"batch_size": 8, "collate_fn": pad}
    )
    assert fitted.ctx.iter == 6
    assert fitted.ctx.input[0].shape[0] == 8
