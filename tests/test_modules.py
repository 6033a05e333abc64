"""Module structure as a course or a PyTorch user writes it: sub-modules held in
attributes, one object per position in a Sequential, user classes named like the
built-ins, nested containers, and each module's own train/eval flag."""

import copy
import pickle
import re

import numpy as np
import pytest

import xpnet
from xpnet import gradcheck, nn, optim

RNG = np.random.default_rng(4)
X = RNG.standard_normal((30, 6))
Y = RNG.integers(0, 3, 30)


class TwoLayerNet(nn.Module):
    """The CS231n / PyTorch pattern: layers in attributes, forward and backward by hand."""

    def __init__(self, hidden=5):
        super().__init__()
        self.hidden = hidden
        self.fc1 = nn.Linear(6, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, 3)

    def forward(self, x):
        return self.fc2.forward(self.relu.forward(self.fc1.forward(x)))

    def backward(self, g):
        return self.fc1.backward(self.relu.backward(self.fc2.backward(g)))

    def get_config(self):
        return {"hidden": self.hidden}


class Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = [nn.Linear(6, 4), nn.Linear(4, 3)]

    def forward(self, x):
        for b in self.blocks:
            x = b.forward(x)
        return x

    def backward(self, g):
        for b in reversed(self.blocks):
            g = b.backward(g)
        return g


def test_sub_modules_in_attributes_are_found_like_pytorch(tmp_path):
    """Before, such a model had 0 parameters: the optimizer said 'pass
    model.parameters()' (the student had), to()/eval() skipped the layers, and save
    wrote a file load called corrupt."""
    xpnet.seed(0)
    model = TwoLayerNet()
    assert [name for name, _ in model.named_children()] == ["fc1", "relu", "fc2"]
    assert list(model.state_dict()) == ["fc1.W", "fc1.b", "fc2.W", "fc2.b"]
    assert model.num_parameters() == 6 * 5 + 5 + 5 * 3 + 3
    assert [name for name, _ in Blocks().named_parameters()] == ["blocks.0.W", "blocks.0.b", "blocks.1.W", "blocks.1.b"]

    history = xpnet.fit(model, "cross_entropy", X, Y, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=5,
                        progress=False)
    assert history.params["compile"] == "eager"  # a user's composite runs its own forward/backward
    assert history["loss"][-1] < history["loss"][0]

    model.eval()
    assert not model.fc1.training and not model.relu.training
    model.to(dtype="float64")
    assert model.fc1.dtype == model.fc2.dtype == "float64"
    assert gradcheck.check_model(model, "cross_entropy", X[:5], Y[:5]).passed

    path = xpnet.save(model, tmp_path / "net.npz")
    loaded = xpnet.load(path)
    assert type(loaded) is TwoLayerNet
    np.testing.assert_array_equal(xpnet.to_numpy(loaded.predict(X)), xpnet.to_numpy(model.predict(X)))
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(xpnet.to_numpy(other.predict(X)), xpnet.to_numpy(model.predict(X)))


def test_a_sequential_subclass_keeps_its_other_sub_modules_like_pytorch():
    """Before, only the layers counted: an extra module a subclass set (an auxiliary
    head) had no parameters for the optimizer, and to()/eval() skipped it."""

    class WithAux(nn.Sequential):
        def __init__(self):
            super().__init__(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
            self.aux = nn.Linear(6, 1)
            self.alias = self.layers[0]  # a second name for a layer: still one child

    model = WithAux()
    assert [name for name, _ in model.named_children()] == ["0", "1", "2", "aux"]
    assert list(model.state_dict()) == ["0.W", "0.b", "2.W", "2.b", "aux.W", "aux.b"]
    assert model.eval() is model and not model.aux.training
    model.to(dtype="float64")
    assert model.aux.dtype == "float64"
    assert model._last_layer() is model.layers[-1]  # the output is still the last layer's
    assert model.forward(xpnet.asarray(X, dtype="float64")).shape == (len(X), 3)


def test_a_sequential_subclass_saves_only_if_load_can_rebuild_it(tmp_path):
    """Sequential.from_config rebuilds a subclass as cls(*layers). One whose __init__
    builds its own layers used to save fine and then fail to load as "corrupt"."""

    class Builds(nn.Sequential):
        def __init__(self):
            super().__init__(nn.Linear(6, 3))

    with pytest.raises(TypeError, match=r"Builds\(\*layers\).*does not take its 1 layers"):
        xpnet.save(Builds(), tmp_path / "builds.npz")
    assert not (tmp_path / "builds.npz").exists()

    xpnet.seed(0)
    model = TakesLayersWithAux(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    loaded = xpnet.load(xpnet.save(model, tmp_path / "aux.npz"))
    assert type(loaded) is TakesLayersWithAux
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(xpnet.to_numpy(loaded.state_dict()[name]), xpnet.to_numpy(value), err_msg=name)


class TakesLayersWithAux(nn.Sequential):
    def __init__(self, *layers):
        super().__init__(*layers)
        self.aux = nn.Linear(6, 1)


def test_a_module_reached_twice_is_counted_and_stepped_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(4, 4)
            self.decoder = self.encoder

    model = Tied()
    assert [name for name, _ in model.named_parameters()] == ["encoder.W", "encoder.b"]
    assert model.num_parameters() == 20
    assert len(list(model.modules())) == 2


@pytest.mark.parametrize("reuse", ["activation", "linear", "nested", "append", "itself"])
def test_one_module_object_in_two_places_of_a_sequential_is_refused(reuse):
    """Each layer caches its input for backward: a reused ReLU overwrote the first
    use's cache, eager training computed wrong gradients with no error, and compiled
    training (one kernel per position) disagreed with it."""
    relu, lin = nn.ReLU(), nn.Linear(4, 4)
    with pytest.raises(ValueError) as info:
        if reuse == "activation":
            nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu)
        elif reuse == "linear":
            nn.Sequential(lin, nn.Tanh(), lin)
        elif reuse == "nested":
            nn.Sequential(nn.Sequential(nn.Linear(4, 4), relu), relu)
        elif reuse == "append":
            nn.Sequential(nn.Linear(4, 4), relu).append(relu)
        else:
            model = nn.Sequential(nn.Linear(4, 4))
            model.append(model)
    text = str(info.value)
    if reuse == "itself":
        assert "contains) the Sequential itself" in text
        return
    name, first, second = {"activation": ("ReLU", 1, 3), "linear": ("Linear", 0, 2), "nested": ("ReLU", 0, 1),
                           "append": ("ReLU", 1, 2)}[reuse]
    assert re.search(rf"layer {second} is \(or contains\) the same {name} object as layer {first}\. .*"
                     rf"create a new {name}\(\.\.\.\) for each position", text), text
    assert ("share weights" in text) == (name == "Linear")


def test_append_and_slicing():
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    with pytest.raises(TypeError, match=r"Sequential layer 3 is a ufunc, not an xpnet.nn.Module"):
        model.append(np.tanh)
    head = model[0:2]
    assert isinstance(head, nn.Sequential) and head[0] is model[0]
    assert tuple(head.predict(X).shape) == (30, 4)


def test_a_user_class_named_like_a_built_in_does_not_replace_it_when_loading(tmp_path):
    xpnet.seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    path = xpnet.save(model, tmp_path / "std.npz")

    class ReLU(nn.Module):  # a student's unfinished homework
        def forward(self, x):
            return x * 0

        def backward(self, g):
            return g

    loaded = xpnet.load(path)
    assert type(loaded[1]) is nn.ReLU
    np.testing.assert_array_equal(xpnet.to_numpy(loaded.predict(X)), xpnet.to_numpy(model.predict(X)))
    # the student's own class saves and loads under its qualified name
    mine = nn.Sequential(nn.Linear(6, 3), ReLU())
    assert mine.get_config()["layers"][1]["type"].endswith("ReLU") and mine.get_config()["layers"][1]["type"] != "ReLU"
    assert type(xpnet.load(xpnet.save(mine, tmp_path / "mine.npz"))[1]) is ReLU


def test_save_refuses_a_layer_its_config_cannot_rebuild(tmp_path):
    class Scale(nn.Module):  # getting-started's layer, before it defines get_config
        def __init__(self, features):
            super().__init__()
            self.params["g"] = xpnet.asarray(np.ones(features))

    with pytest.raises(TypeError, match=r"cannot save Scale: its __init__ takes features, but Scale does not define "
                                        r"get_config\(\), so load would rebuild it with the defaults; .*"
                                        r"\{'features': self.features\}"):
        xpnet.save(nn.Sequential(nn.Linear(6, 3), Scale(3)), tmp_path / "s.npz")

    class Factor(nn.Module):  # a default argument: load would have rebuilt Factor(1.0), silently
        def __init__(self, k=1.0):
            super().__init__()
            self.k = k

        def forward(self, x):
            return x * self.k

        def backward(self, g):
            return g * self.k

    with pytest.raises(TypeError, match=r"cannot save Factor: its __init__ takes k, but Factor does not define"):
        xpnet.save(nn.Sequential(nn.Linear(6, 3), Factor(5.0)), tmp_path / "f.npz")

    class Renamed(Factor):  # a get_config whose keys the constructor does not take
        def get_config(self):
            return {"factor": self.k}

    with pytest.raises(TypeError, match=r"cannot save Renamed: Renamed.get_config\(\) returns \{'factor': 5.0\}, "
                                        r"which does not rebuild it"):
        xpnet.save(nn.Sequential(nn.Linear(6, 3), Renamed(5.0)), tmp_path / "r.npz")
    assert not list(tmp_path.iterdir())


def test_forgetting_super_init_is_named():
    class NoSuper(nn.Module):
        def __init__(self):
            self.scale = 2.0

    with pytest.raises(AttributeError, match=r"NoSuper has no 'params': its __init__ must call super\(\).__init__\(\)"):
        NoSuper().parameters()


def test_nested_sequential_prints_indented_with_one_count_per_line():
    text = repr(nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), nn.Linear(3, 1)))
    assert text.splitlines() == [
        "Sequential(",
        "  (0): Sequential(",
        "    (0): Linear(2→3)  # 9 params",
        "    (1): ReLU()",
        "  )  # 9 parameters, float32 on cpu",
        "  (1): Linear(3→1)  # 4 params",
        ")  # 13 parameters, float32 on cpu",
    ]


def test_predict_and_evaluate_keep_each_modules_own_mode():
    model = nn.Sequential(nn.Linear(6, 4), nn.Dropout(0.5), nn.Linear(4, 3))
    model[1].eval()
    model.predict(X)
    xpnet.evaluate(model, "cross_entropy", X, Y)
    assert [m.training for m in model] == [True, False, True]


def test_predict_proba_does_not_guess_the_output_layer_from_attribute_order():
    """A Sigmoid gate assigned last is not the output: the model's logits still get
    the softmax (rows summing to 1), and no double-softmax warning is raised."""

    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.gate = nn.Linear(6, 8), nn.Linear(8, 3), nn.Softmax()

        def forward(self, x):
            return self.fc2.forward(self.gate.forward(self.fc1.forward(x)))

        def backward(self, g):
            return self.fc1.backward(self.gate.backward(self.fc2.backward(g)))

    model = Gated()
    np.testing.assert_allclose(xpnet.to_numpy(model.predict_proba(X)).sum(axis=1), np.ones(30), rtol=1e-6)
    xpnet.fit(model, "cross_entropy", X, Y, epochs=1, progress=False)  # warnings are errors here


class Block(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.n = n
        self.fc = nn.Linear(n, n)

    def forward(self, x):
        return self.fc.forward(x)

    def backward(self, g):
        return self.fc.backward(g)


def test_save_checks_only_the_configs_load_rebuilds_from(tmp_path):
    """A child built by its parent's __init__ is never rebuilt from its own config, so
    Block's missing get_config does not matter inside Net (it does inside a
    Sequential, which rebuilds each layer from its config)."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block(6)
            self.out = nn.Linear(6, 3)

        def forward(self, x):
            return self.out.forward(self.block.forward(x))

        def backward(self, g):
            return self.block.backward(self.out.backward(g))

    net = Net()
    loaded = xpnet.load(xpnet.save(net, tmp_path / "net.npz"))
    np.testing.assert_array_equal(xpnet.to_numpy(loaded.predict(X)), xpnet.to_numpy(net.predict(X)))
    with pytest.raises(TypeError, match=r"cannot save Block: its __init__ takes n, but Block does not define"):
        xpnet.save(nn.Sequential(Block(6)), tmp_path / "seq.npz")


def test_children_written_as_a_generator():
    class Gen(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 4), nn.Linear(4, 3)

        def children(self):
            yield self.a
            yield self.b

        def forward(self, x):
            return self.b.forward(self.a.forward(x))

        def backward(self, g):
            return self.a.backward(self.b.backward(g))

    model = Gen()
    assert [type(m).__name__ for m in model.modules()] == ["Gen", "Linear", "Linear"]
    history = xpnet.fit(model, "cross_entropy", X, Y, epochs=2, progress=False)
    assert history["loss"][1] < history["loss"][0]


def test_an_attribute_error_inside_a_property_is_not_hidden():
    class Typo(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        @property
        def width(self):
            return self.fc.out_features_typo

    with pytest.raises(AttributeError, match=r"out_features_typo"):
        getattr(Typo(), "width")  # noqa: B009 - the property is what is tested


def test_modules_in_mixed_lists_and_dicts_are_found():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.steps = [nn.Linear(2, 3), np.tanh]
            self.heads = {"a": nn.Linear(3, 1), "b": nn.Linear(3, 2)}

    assert list(Mixed().state_dict()) == ["steps.0.W", "steps.0.b", "heads.a.W", "heads.a.b", "heads.b.W", "heads.b.b"]


def test_a_layer_that_only_reads_another_layers_weights_may_share_it():
    """Tied weights by reference (the unembedding reads the embedding's W): the
    embedding's forward runs once, so no cache is overwritten; it is accepted, and
    its parameters are counted once."""

    class Unembed(nn.Module):
        def __init__(self, emb):
            super().__init__()
            self.emb = emb

        def forward(self, x):
            self._x = x
            return x @ self.emb.params["W"].T

        def backward(self, g):
            return g @ self.emb.params["W"]

    emb = nn.Linear(4, 8)
    model = nn.Sequential(emb, nn.Tanh(), Unembed(emb))
    assert list(model.state_dict()) == ["0.W", "0.b"]
    assert tuple(model.predict(X[:, :4]).shape) == (30, 4)


def test_a_custom_layer_with_children_shows_its_count_in_a_sequential():
    text = repr(nn.Sequential(nn.Linear(6, 6), Block(6)))
    assert "  (1): Block()  # 42 params" in text.splitlines()


def test_the_double_softmax_warning_points_at_the_callers_line():
    model = nn.Sequential(nn.Linear(6, 3), nn.Softmax())
    with pytest.warns(UserWarning, match="applies a softmax again") as record:
        xpnet.fit(model, "cross_entropy", X, Y, epochs=1, progress=False)
    assert record[0].filename == __file__


def test_two_user_classes_of_one_name_from_different_modules_both_load(tmp_path):
    first, second = {}, {}
    source = ("from xpnet import nn\nclass Act(nn.Module):\n    def forward(self, x):\n        return x * {k}\n"
              "    def backward(self, g):\n        return g * {k}\n")
    exec(source.format(k=2), {"__name__": "project_a"}, first)
    exec(source.format(k=3), {"__name__": "project_b"}, second)
    for ns in (first, second):
        model = nn.Sequential(nn.Linear(6, 3), ns["Act"]())
        loaded = xpnet.load(xpnet.save(model, tmp_path / f"{id(ns)}.npz"))
        assert type(loaded[1]) is ns["Act"]
        np.testing.assert_array_equal(xpnet.to_numpy(loaded.predict(X)), xpnet.to_numpy(model.predict(X)))


class WithHead(nn.Sequential):
    """A subclass whose forward and backward run a module besides its layers."""

    def __init__(self, *layers):
        super().__init__(*layers)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        return self.head.forward(super().forward(x))

    def backward(self, grad_out):
        return super().backward(self.head.backward(grad_out))


@pytest.mark.parametrize("compile", ["auto", False])
def test_fit_trains_a_sequential_subclass_through_its_own_backward(compile):
    """fit back-propagates with backward_params, which walked the layers and skipped the
    subclass's backward: the head never trained and the layers got the head's output
    gradient as theirs (the loss rose). Now fit's gradients are the hand loop's."""
    rng = np.random.default_rng(3)
    X6, y3 = rng.standard_normal((32, 6)), rng.integers(0, 3, 32)
    runs = []
    for by_hand in (True, False):
        xpnet.seed(0)
        model = WithHead(nn.Linear(6, 5), nn.ReLU()).to(dtype="float64")
        opt = optim.SGD(model.parameters(), lr=0.1)
        if by_hand:
            loss = xpnet.losses.SoftmaxCrossEntropy()
            for _ in range(3):
                loss.forward(model.forward(xpnet.asarray(X6, dtype="float64")), xpnet.asarray(y3))
                model.backward(loss.backward())
                opt.step()
        else:
            history = xpnet.fit(model, "cross_entropy", X6, y3, optimizer=opt, epochs=3, batch_size=None,
                                progress=False, compile=compile)
            assert history["loss"][-1] < history["loss"][0]
        runs.append({name: xpnet.to_numpy(v) for name, v in model.state_dict().items()})
    assert list(runs[1]) == ["0.W", "0.b", "head.W", "head.b"]
    for name in runs[0]:
        np.testing.assert_allclose(runs[1][name], runs[0][name], rtol=1e-12, atol=1e-14, err_msg=name)


class CourseMLP(nn.Sequential):
    """The course's way to write a model: sizes in, layers built inside."""

    def __init__(self, n_in, n_hidden, n_out):
        super().__init__(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out))


class LogReg(nn.Sequential):
    def __init__(self, n_features=4):
        super().__init__(nn.Linear(n_features, 1))


def _with_extra():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model.extra = nn.Linear(4, 1)  # a child of the instance, which Sequential(*layers) does not rebuild
    return model


@pytest.mark.parametrize(("make", "match"), [
    (_with_extra, r"cannot save Sequential: load would rebuild it from get_config\(\) without the parameters "
                  r"\['extra.W', 'extra.b'\].*put the module in the layer list"),
    # the constructor takes as many arguments as there are layers: binding the signature passed
    (lambda: CourseMLP(4, 8, 2), r"cannot save CourseMLP: load rebuilds it as CourseMLP.from_config.*"
                                 r"in_features must be an integer.*let __init__ take its layers"),
    (lambda: LogReg(4), r"cannot save LogReg: .*let __init__ take its layers"),
])
def test_save_refuses_a_model_load_would_not_rebuild(tmp_path, make, match):
    """save wrote these, and load then called the file corrupt: the work was lost at
    load time, after training. Now save refuses, says why and how, and writes nothing;
    the check leaves the global random generator where it was."""
    model = make()
    xpnet.seed(5)
    expected = xpnet.random.generator().random(3)
    xpnet.seed(5)
    with pytest.raises(TypeError, match=match):
        xpnet.save(model, tmp_path / "model.npz")
    np.testing.assert_array_equal(xpnet.random.generator().random(3), expected)
    assert not list(tmp_path.iterdir())


def test_what_save_checks_by_rebuilding_still_saves_and_loads(tmp_path):
    """The round trip check passes everything load rebuilds, and builds the throwaway
    model once per class and configuration (a checkpoint every epoch)."""
    import xpnet.io as io

    xpnet.seed(0)
    model = TakesLayersWithAux(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    io._ROUND_TRIPS.clear()
    for epoch in range(3):
        xpnet.save(model, tmp_path / f"e{epoch}.npz")
    assert len([k for k in io._ROUND_TRIPS if k[0] is TakesLayersWithAux]) == 1
    loaded = xpnet.load(tmp_path / "e2.npz")
    assert list(loaded.state_dict()) == list(model.state_dict())


def test_the_repr_of_a_sequential_subclass_lists_what_it_counts():
    """The summary counted the head's parameters without showing the head."""
    text = repr(WithHead(nn.Linear(6, 5), nn.ReLU()))
    assert text.startswith("WithHead(\n  (0): Linear(6→5)  # 35 params\n  (1): ReLU()\n  (head): Linear(5→3)  # 18 params\n)")
    assert "# 53 parameters" in text
