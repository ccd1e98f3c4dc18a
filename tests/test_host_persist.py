"""impacket's wmipersist.py, unmodified, against an emulated XP SP2 host: it registers a
permanent event consumer in root\\subscription (GetObject, SpawnInstance, PutInstance of
ActiveScriptEventConsumer, __IntervalTimerInstruction, __EventFilter and
__FilterToConsumerBinding, each checked with IWbemCallResult::GetCallStatus) and removes it
again (DeleteInstance). The repository of that host stores the instances; nothing runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import test_host_clients
from test_host_clients import RunningLab, StartLab, scenario

pytestmark = pytest.mark.slow
start_lab = test_host_clients.start_lab
BIN = Path(sys.executable).parent
SUB = "root\\subscription"


def wmipersist(lab: RunningLab, *args: str, cwd: Path) -> str:
    res = subprocess.run(
        [sys.executable, str(BIN / "wmipersist.py"), f"CORP/admin:Adm1n!@{lab.address()}",
         *args], capture_output=True, text=True, timeout=90, check=False, cwd=cwd)
    return res.stdout + res.stderr


def names(lab: RunningLab, cls: str) -> list[str]:
    rows = lab.repository().exec_query(SUB, f"SELECT * FROM {cls}")
    return sorted(str(r.relpath) for r in rows)


def test_wmipersist_installs_and_removes_a_permanent_consumer(start_lab: StartLab,
                                                              tmp_path: Path) -> None:
    lab = start_lab(scenario())
    marker = tmp_path / "ran"
    vbs = tmp_path / "x.vbs"
    vbs.write_text(f'CreateObject("Scripting.FileSystemObject").CreateTextFile("{marker}")\n')
    out = wmipersist(lab, "install", "-name", "LabPersist", "-vbs", str(vbs), "-timer", "60",
                     cwd=tmp_path)
    for step in ("Adding ActiveScriptEventConsumer LabPersist - OK",
                 "Adding IntervalTimerInstruction - OK", "Adding EventFilter EF_LabPersist - OK",
                 "Adding FilterToConsumerBinding - OK"):
        assert step in out, out
    repo = lab.repository()
    consumer = repo.get_object(SUB, 'ActiveScriptEventConsumer.Name="LabPersist"')
    assert consumer.get("ScriptText") == vbs.read_text() and consumer.get(
        "ScriptingEngine") == "VBScript"
    assert repo.get_object(SUB, '__IntervalTimerInstruction.TimerId="TI_LabPersist"').get(
        "IntervalBetweenEvents") == 60
    assert names(lab, "__FilterToConsumerBinding") == [
        '__FilterToConsumerBinding.Consumer="ActiveScriptEventConsumer.Name=\\"LabPersist\\"",'
        'Filter="__EventFilter.Name=\\"EF_LabPersist\\""']
    # Another host's repository is untouched, and nothing ran.
    assert lab.repository("A").exec_query(SUB, "SELECT * FROM ActiveScriptEventConsumer") == []
    assert not marker.exists()
    out = wmipersist(lab, "remove", "-name", "LabPersist", cwd=tmp_path)
    for step in ("Removing ActiveScriptEventConsumer LabPersist - OK",
                 "Removing EventFilter EF_LabPersist - OK",
                 "Removing IntervalTimerInstruction TI_LabPersist - OK",
                 "Removing FilterToConsumerBinding LabPersist - OK"):
        assert step in out, out
    for cls in ("ActiveScriptEventConsumer", "__EventFilter", "__IntervalTimerInstruction",
                "__FilterToConsumerBinding"):
        assert names(lab, cls) == [], cls
    # Removing again: the first DeleteInstance fails with WBEM_E_NOT_FOUND.
    out = wmipersist(lab, "remove", "-name", "LabPersist", cwd=tmp_path)
    assert "WBEM_E_NOT_FOUND" in out, out
