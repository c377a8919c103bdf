"""The GPU scripts run on a lent GPU with minutes to spare and no second try: every benchmark they call
must accept the flags they pass, or a typo costs the lease. Checked here with each script's own parser."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = ["gpu.sh", "gpu_followup.sh"]
CALL = re.compile(r"python3 benchmarks/(\w+)\.py([^|;&\n]*)")
VARIABLES = {'"$OUT/': '"/tmp/out/', '"$RECOGNIZER"': "auto", "${SPEED_ARGS:-}": ""}


def invocations(script: str) -> list[tuple[str, list[str]]]:
    """(benchmark, its arguments) for every python call in ``script``, the ``diag`` helper's calls expanded."""
    lines = [line for line in (BENCHMARKS / script).read_text().replace("\\\n", " ").splitlines()
             if not line.lstrip().startswith("#")]
    calls, helpers = [], {}
    for line in lines:
        if (helper := re.match(r"\s*(\w+)\(\) \{(.*)\}", line)) and (call := CALL.search(helper.group(2))):
            helpers[helper.group(1)] = (call.group(1), call.group(2))
            continue
        for call in CALL.finditer(line):
            calls.append((call.group(1), call.group(2)))
        for name, (module, args) in helpers.items():
            if used := re.match(rf"\s*(?:\w+=\S+ )*{name} ([^|]*)", line):
                calls.append((module, args.replace('"$@"', used.group(1))))
    expanded = []
    for module, args in calls:
        for variable, value in VARIABLES.items():
            args = args.replace(variable, value)
        expanded.append((module, shlex.split(args.split(" 2>")[0])))
    return expanded


def load(module: str):
    spec = importlib.util.spec_from_file_location(f"bench_{module}", BENCHMARKS / f"{module}.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.mark.parametrize("script", SCRIPTS)
def test_gpu_scripts_parse_and_pass_only_flags_their_benchmarks_accept(script):
    assert subprocess.run(["bash", "-n", str(BENCHMARKS / script)]).returncode == 0
    calls = invocations(script)
    assert calls, f"{script}: no benchmark call found"
    for module, args in calls:
        benchmark = load(module)
        if not hasattr(benchmark, "build_parser"):
            assert args == [], f"{script}: {module}.py takes no arguments, got {args}"
            continue
        try:
            benchmark.build_parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"{script}: {module}.py refuses {' '.join(args)}")


def test_the_check_sees_every_call_and_catches_a_typo(tmp_path, monkeypatch):
    """The follow-up's FLUX diagnostic comes through its helper; a misspelt flag or value is refused."""
    calls = invocations("gpu_followup.sh")
    diagnostics = [args for module, args in calls if module == "flux_train_diagnostic"]
    assert diagnostics == [["random-flux", "1", "1024", "1", "1", "--steps", "3", "--attention", "no-cudnn"]]
    assert sum(module == "gpu_speed" for module, _ in calls) == 3
    assert sum(module == "realsize_chain" for module, _ in calls) == 1
    parser = load("gpu_speed").build_parser()
    for typo in (["--train-varaints", "4:0"], ["--train-variants", "4:1,8:2"], ["--train-variants", "4:0:0:lean"],
                 ["--sections", "train,fluxx"]):
        with pytest.raises(SystemExit):
            parser.parse_args(typo)


def test_gpu_kernel_time_counts_each_kernel_once():
    """An op's row and its kernel's row both carry the kernel's time: only the kernel's is counted."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    rows = [SimpleNamespace(device_type=DeviceType.CPU, self_device_time_total=150.0),  # aten::mm
            SimpleNamespace(device_type=DeviceType.CUDA, self_device_time_total=150.0),  # its GEMM kernel
            SimpleNamespace(device_type=DeviceType.CUDA, self_device_time_total=50.0, is_user_annotation=True),
            SimpleNamespace(device_type=DeviceType.CUDA, self_device_time_total=20.0)]
    assert load("gpu_speed").gpu_kernel_us(rows) == 170.0
