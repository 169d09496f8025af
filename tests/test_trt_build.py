"""`gsmlp build` where TensorRT is absent: argument checks, shape profiles, clear errors, no tracebacks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from gsmlp.commands import build as build_command
from gsmlp.errors import GsmlpError
from gsmlp.runtime.trt_build import _with_block_masks, count_gated_nodes, parse_shapes, profile_dims


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gsmlp build")
    build_command.add_arguments(parser)
    return parser.parse_args(list(argv))


def _gated_onnx(path: Path, nodes: int = 2) -> Path:
    """A graph with `nodes` GatedSparseMLP nodes in the gsmlp domain (weights as graph inputs, no body)."""
    graph_nodes = []
    names = ["W1", "B1", "W2", "B2", "GateDown", "GateUp", "GateBias"]
    current = "X"
    for i in range(nodes):
        out = f"Y{i}"
        graph_nodes.append(
            helper.make_node(
                "GatedSparseMLP",
                [current, *names],
                [out],
                domain="gsmlp",
                name=f"ffn{i}",
                block_size=32,
                threshold=0.0,
                plugin_version="1",
                plugin_namespace="",
            )
        )
        current = out
    graph = helper.make_graph(
        graph_nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n", 64])]
        + [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["n", 64])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("gsmlp", 1)]
    )
    onnx.save(model, str(path))
    return path


def test_parse_shapes_min_opt_max_and_fixed() -> None:
    spec = parse_shapes("1x512x512,1x800x800,2x1333x1333")
    assert (spec.min, spec.opt, spec.max) == ((1, 512, 512), (1, 800, 800), (2, 1333, 1333))
    fixed = parse_shapes("1x640x480")
    assert fixed.min == fixed.opt == fixed.max == (1, 640, 480)


@pytest.mark.parametrize(
    ("text", "mention"),
    [
        ("800", "expected BxHxW"),
        ("1x800", "expected BxHxW"),
        ("1x800x800,1x900x900", "expected BxHxW"),
        ("1x8a0x800", "expected BxHxW"),
        ("0x800x800", "below 1"),
        ("1x900x900,1x800x800,1x1000x1000", "height must satisfy min <= opt <= max"),
    ],
)
def test_parse_shapes_rejects_with_the_reason(text: str, mention: str) -> None:
    with pytest.raises(GsmlpError, match=mention):
        parse_shapes(text)


def test_profile_dims_fills_batch_height_width() -> None:
    assert profile_dims("pixel_values", [-1, 3, -1, -1], (2, 512, 640)) == (2, 3, 512, 640)
    assert profile_dims("pixel_mask", [-1, -1, -1], (2, 512, 640)) == (2, 512, 640)
    assert profile_dims("pixel_values", [1, 3, -1, -1], (1, 512, 640)) == (1, 3, 512, 640)


def test_profile_dims_refuses_what_it_cannot_set() -> None:
    with pytest.raises(GsmlpError, match="ONNX fixes it to 1"):
        profile_dims("pixel_values", [1, 3, -1, -1], (2, 512, 640))
    with pytest.raises(GsmlpError, match="dimension 1 is dynamic"):
        profile_dims("pixel_values", [-1, -1, -1, -1], (1, 512, 640))
    with pytest.raises(GsmlpError, match="at least 3 dimensions"):
        profile_dims("tokens", [-1, 256], (1, 512, 640))


def test_count_gated_nodes(tmp_path: Path) -> None:
    assert count_gated_nodes(_gated_onnx(tmp_path / "m.onnx", nodes=3)) == 3
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(GsmlpError, match="bad.onnx is corrupt or not an ONNX model"):
        count_gated_nodes(bad)


def test_block_masks_expose_each_node_in_memory_only(tmp_path: Path) -> None:
    # What --block-masks hands TensorRT's parser: every node with its BlockMask as an engine output.
    path = _gated_onnx(tmp_path / "m.onnx", nodes=3)
    raw = path.read_bytes()
    serialized, names = _with_block_masks(path.read_bytes(), path)
    assert names == [f"gsmlp.block_mask:ffn{i}" for i in range(3)]
    model = onnx.load_from_string(serialized)
    assert [list(n.output) for n in model.graph.node] == [[f"Y{i}", names[i]] for i in range(3)]
    assert {o.name for o in model.graph.output} >= set(names)
    assert path.read_bytes() == raw


def test_missing_onnx_is_named(tmp_path: Path) -> None:
    args = _args("--onnx", str(tmp_path / "absent.onnx"), "--out", str(tmp_path / "m.engine"))
    with pytest.raises(GsmlpError, match="--onnx .*absent.onnx: no such file"):
        build_command.run(args)


def test_without_tensorrt_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import tensorrt` fail, as on a machine without TensorRT.
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    model = _gated_onnx(tmp_path / "m.onnx")
    args = _args("--onnx", str(model), "--out", str(tmp_path / "m.engine"), "--shapes", "1x64x64")
    with pytest.raises(GsmlpError, match=r"install the `trt` extra"):
        build_command.run(args)
    assert not (tmp_path / "m.engine").exists()
    assert not (tmp_path / "m.engine.json").exists()


def test_option_conflicts_are_refused(tmp_path: Path) -> None:
    model = _gated_onnx(tmp_path / "m.onnx")
    out = str(tmp_path / "m.engine")
    with pytest.raises(GsmlpError, match="--no-plugin and --plugin-lib"):
        build_command.run(_args("--onnx", str(model), "--out", out, "--no-plugin", "--plugin-lib", "x.so"))
    with pytest.raises(GsmlpError, match="--workspace must be at least 1, got 0"):
        build_command.run(_args("--onnx", str(model), "--out", out, "--workspace", "0"))


def test_help_teaches_the_options() -> None:
    parser = argparse.ArgumentParser(prog="gsmlp build", description=build_command.DESCRIPTION)
    build_command.add_arguments(parser)
    text = parser.format_help()
    for option in (
        "--onnx",
        "--out",
        "--plugin-lib",
        "--shapes",
        "--timing-cache",
        "--workspace",
        "--no-plugin",
        "--block-masks",
    ):
        assert option in text
    assert "fp16" in build_command.DESCRIPTION
