"""fitted.confusion(): counts against scikit-learn's confusion_matrix; binary; plot."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from torch import nn

import luzwidget as lw
from luzwidget.confusion import confusion_matrix
from luzwidget.core.exceptions import ConfigError, DataError

OPTS = {"batch_size": 32}


def _data(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


@pytest.fixture(scope="module")
def fitted() -> lw.Fitted:
    torch.manual_seed(0)
    x, y = _data()
    spec = lw.setup(nn.Linear(4, 3), loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam)
    return spec.set_opt_hparams(lr=0.05).fit(
        (x, y), epochs=3, valid_data=_data(96, seed=1), verbose=False, dataloader_options=OPTS
    )


def _expected(fitted: lw.Fitted, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        pred = fitted.model(x).argmax(1)
    return sk_confusion(y.numpy(), pred.numpy(), labels=[0, 1, 2])


def test_valid_set_by_default_against_sklearn(fitted: lw.Fitted) -> None:
    frame = fitted.confusion()
    x, y = _data(96, seed=1)
    assert frame.index.name == "true"
    assert frame.columns.name == "predicted"
    assert list(frame.index) == [0, 1, 2]
    assert list(frame.columns) == [0, 1, 2]
    np.testing.assert_array_equal(frame.to_numpy(), _expected(fitted, x, y))


def test_given_data_and_class_names(fitted: lw.Fitted) -> None:
    x, y = _data(50, seed=3)
    frame = fitted.confusion((x, y), classes=["low", "mid", "high"])
    assert list(frame.columns) == ["low", "mid", "high"]
    np.testing.assert_array_equal(frame.to_numpy(), _expected(fitted, x, y))


def test_train_set_counts_every_batch_of_its_loader(fitted: lw.Fitted) -> None:
    frame = fitted.confusion(set="train")
    assert frame.to_numpy().sum() == 192  # 200 examples, the last partial batch dropped


def test_plot_is_a_heatmap_of_the_counts(fitted: lw.Fitted) -> None:
    figure = fitted.confusion(plot=True)
    assert isinstance(figure, go.Figure)
    np.testing.assert_array_equal(np.asarray(figure.data[0].z), fitted.confusion().to_numpy())


def test_binary_one_column_thresholded_and_one_hot_targets() -> None:
    logits = torch.tensor([[-1.0], [2.0], [0.5], [-0.2]])
    target = torch.tensor([0.0, 1.0, 0.0, 1.0])
    frame = confusion_matrix(logits, target)
    expected = sk_confusion([0, 1, 0, 1], [0, 1, 1, 0], labels=[0, 1])
    np.testing.assert_array_equal(frame.to_numpy(), expected)
    probabilities = torch.sigmoid(logits)
    same = confusion_matrix(probabilities, target, threshold=0.5)
    np.testing.assert_array_equal(same.to_numpy(), expected)
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    one_hot = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_array_equal(confusion_matrix(scores, one_hot).to_numpy(), [[0, 0], [1, 1]])


def test_errors_say_what_to_do(fitted: lw.Fitted) -> None:
    with pytest.raises(ConfigError, match="set must be one of"):
        fitted.confusion(set="test")
    x, y = _data(10)
    no_valid = lw.setup(nn.Linear(4, 3), loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    done = no_valid.set_opt_hparams(lr=0.1).fit(
        (x, y), epochs=1, verbose=False, dataloader_options={"batch_size": 5}
    )
    with pytest.raises(ConfigError, match="without valid_data"):
        done.confusion()
    with pytest.raises(DataError, match="class indices >= 0"):
        confusion_matrix(torch.randn(3, 2), torch.tensor([0, -1, 1]))
