"""The step and inference images are built by CI per commit, tagged immutably, and that tag is what the plan pins."""

from __future__ import annotations

import json

import yaml

from tests.conftest import REPO, rendered

WORKFLOWS = REPO / ".github" / "workflows"


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_ci_builds_both_images_per_commit_before_any_deploy() -> None:
    jobs = workflow("clinops.yml")["jobs"]
    images = jobs["images"]
    assert images["outputs"]["tag"] == "${{ steps.tag.outputs.tag }}"
    script = "\n".join(step.get("run", "") for step in images["steps"])
    assert "tag=git-${GITHUB_SHA}" in script
    for dockerfile, repository in (
        ("pipelines/Dockerfile", "clinops-pipeline-steps"),
        ("serving/container/Dockerfile", "clinops-inference"),
    ):
        assert f"{repository}:{dockerfile}" in script and (REPO / dockerfile).is_file()
    assert 'docker push "$REGISTRY/$repository:$TAG"' in script
    for stack in ("dev", "staging", "prod"):
        deploy = jobs[f"deploy-{stack}"]
        assert "images" in ([deploy["needs"]] if isinstance(deploy["needs"], str) else deploy["needs"])
        assert deploy["with"] == {"stack": stack, "image_tag": "${{ needs.images.outputs.tag }}"}


def test_deploy_pins_the_tag_before_the_gate() -> None:
    steps = workflow("deploy.yml")["jobs"]["deploy"]["steps"]
    names = [s.get("name", "") for s in steps]
    pin = next(i for i, s in enumerate(steps) if "clinops:imageTag" in s.get("run", ""))
    assert '"${{ inputs.image_tag }}"' in steps[pin]["run"]
    assert pin < next(i for i, n in enumerate(names) if n.startswith("Offline gate"))


def test_the_plan_pins_the_configured_tag() -> None:
    for stack in ("dev", "prod"):
        plan = rendered(stack)
        tag = plan["config"]["clinops:imageTag"]
        pipelines = [s["newState"] for s in plan["steps"] if s["newState"]["type"] == "aws:sagemaker/pipeline:Pipeline"]
        assert pipelines
        for pipeline in pipelines:
            steps = json.loads(pipeline["inputs"]["pipelineDefinition"])["Steps"]
            if all(step["Type"] == "Transform" for step in steps):
                continue  # batch scoring runs the endpoint's own Model: its image is pinned there
            text = json.dumps(pipeline["inputs"]["pipelineDefinition"])
            assert f"clinops-pipeline-steps:{tag}" in text and ":1.0.0" not in text, pipeline["urn"]
