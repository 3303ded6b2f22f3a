"""The runs benchmarks/browser.py trains while it measures the page (``--model``)."""

SETUP = """\
import torch
from torch import nn
import luzwidget as lw

torch.set_num_threads(1)
torch.manual_seed(0)
X = torch.randn(2048, 8)
y = X.sum(1, keepdim=True)
model = lw.setup(nn.Linear, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_hparams(
    in_features=8, out_features=1).set_opt_hparams(lr=1e-2)
run = model.run((X, y), epochs=1000, valid_data=0.1, verbose=False,
                dataloader_options={"batch_size": 16})
"""
# --model images: 8x8 images in 10 classes, so the Batch panel draws images and confusion
# matrices and the Layers table has several layers (the heavier panels' case).
SETUP_IMAGES = """\
import torch
from torch import nn
import luzwidget as lw

torch.set_num_threads(1)
torch.manual_seed(0)
X = torch.randn(4096, 1, 8, 8)
y = torch.randint(0, 10, (4096,))
net = lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
model = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD,
                 metrics=[lw.metrics.Accuracy()]).set_opt_hparams(lr=1e-2)
run = model.run((X, y), epochs=1000, valid_data=0.1, verbose=False,
                dataloader_options={"batch_size": 32})
"""
# --model playground: the spiral and a 2-16-16-2 MLP, so the Playground panel draws its
# regions and hidden units (a teacher's case).
SETUP_PLAYGROUND = """\
import torch
from torch import nn
import luzwidget as lw

torch.set_num_threads(1)
torch.manual_seed(0)
X, y = lw.datasets.playground("spiral", n=2048, noise=0.1)
net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
model = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD,
                 metrics=[lw.metrics.Accuracy()]).set_opt_hparams(lr=1e-2)
run = model.run((X, y), epochs=1000, valid_data=0.1, verbose=False,
                dataloader_options={"batch_size": 16})
"""
SETUPS = {"linear": SETUP, "images": SETUP_IMAGES, "playground": SETUP_PLAYGROUND}
