"""`pipelinectl saga list -o json` and `temporal workflow list -o json` agree on the same server."""

from __future__ import annotations

import json

import pytest
import yaml
from pipelinectl_temporal.mapping import temporal_status

from pipelinectl.testing import CliEnv

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

NS = "parity"


def test_saga_list_matches_temporal_workflow_list(tmp_path, temporal, worker, uid):
    kinds = {"ok": {}, "fail": {"fail_at": "charge"}, "stuck": {"stuck_at": "ship"}, "hold": {"hold": 60}}
    ids = []
    for kind, extra in kinds.items():
        for i in range(3):
            saga_id = f"{uid}-{kind}-{i}"
            temporal.start_saga(NS, saga_id, {"id": saga_id, **extra})
            ids.append(saga_id)
    for i in range(3):
        temporal.wait_status(NS, f"{uid}-ok-{i}", {"COMPLETED"})
        temporal.wait_status(NS, f"{uid}-fail-{i}", {"FAILED"})
    temporal.cli("workflow", "terminate", "--workflow-id", f"{uid}-hold-0", "--reason", "parity",
                 "--namespace", NS)
    temporal.cli("workflow", "cancel", "--workflow-id", f"{uid}-hold-1", "--namespace", NS)
    temporal.wait_status(NS, f"{uid}-hold-1", {"CANCELED"})
    temporal.wait_visible(NS, "ExecutionStatus != 'Running'", 3 + 3 + 2)

    env = CliEnv(tmp_path)
    env.config_path.parent.mkdir(parents=True, exist_ok=True)
    env.config_path.write_text(yaml.safe_dump({"current-context": "p", "contexts": {
        "p": {"driver": "temporal", "url": temporal.http_url, "namespace": NS, "pipeline": NS}}}))
    env.config_path.chmod(0o600)
    ours = env.run("saga", "list", "-o", "json")
    assert ours.rc == 0, ours
    theirs = temporal.cli("workflow", "list", "-o", "json", "--namespace", NS)
    assert theirs.returncode == 0, theirs.stderr

    ours_by_id = {s["id"]: s for s in ours.json()["items"]}
    theirs_by_id = {w["execution"]["workflowId"]: w for w in json.loads(theirs.stdout)}
    assert set(ours_by_id) == set(theirs_by_id) == set(ids)
    for saga_id, workflow in theirs_by_id.items():
        saga = ours_by_id[saga_id]
        assert saga["details"]["temporal_status"] == temporal_status(workflow["status"]), saga_id
        assert saga["details"]["run_id"] == workflow["execution"]["runId"]
        assert saga["definition"] == workflow["type"]["name"]
    assert {ours_by_id[f"{uid}-hold-1"]["status"], ours_by_id[f"{uid}-hold-0"]["status"]} == {"compensated", "failed"}
