"""Whether a Ray actor can be placed at all (pure logic over ``ray.nodes()``-shaped dicts; no ray needed)."""

from __future__ import annotations

import pytest

from kto_build.adapters.ray_resources import UnplaceableError, await_placement, message, request_of, unplaceable

NODES = [{"Alive": True, "Resources": {"CPU": 2.0, "head_node": 100.0, "memory": 1e9, "node:127.0.0.2": 1.0}},
         {"Alive": True, "Resources": {"CPU": 2.0, "worker_node": 100.0}},
         {"Alive": False, "Resources": {"CPU": 8.0, "GPU": 1.0}}]


def test_the_request_of_an_actor_is_its_cpus_gpus_and_custom_resources():
    assert request_of({"num_cpus": 0.5, "num_gpus": 0, "resources": {"worker_node": 1}}) == \
        {"CPU": 0.5, "worker_node": 1.0}


def test_a_request_fits_when_one_alive_node_holds_all_of_it():
    assert unplaceable([{"CPU": 2.0, "head_node": 1.0}, {"CPU": 1.0, "worker_node": 1.0}], NODES) is None
    assert unplaceable([{"CPU": 1.0, "head_node": 1.0, "worker_node": 1.0}], NODES) == \
        {"CPU": 1.0, "head_node": 1.0, "worker_node": 1.0}  # the two are on different nodes
    assert unplaceable([{"CPU": 3.0}], NODES) == {"CPU": 3.0}
    assert unplaceable([{"GPU": 1.0}], NODES) == {"GPU": 1.0}  # only a dead node has one
    assert unplaceable([{"CPU": 1.0}], []) == {"CPU": 1.0}


def test_the_message_says_what_was_asked_and_what_the_nodes_have():
    text = message({"CPU": 1.0, "GPU": 1.0}, NODES, "127.0.0.2:6379")
    assert text.startswith("no node of the Ray cluster at 127.0.0.2:6379 has what an actor asks for (CPU 1, GPU 1)")
    assert "CPU 2, head_node 100; CPU 2, worker_node 100" in text and "memory" not in text and "node:" not in text


def test_await_placement_returns_at_once_when_every_actor_fits():
    slept = []
    await_placement([{"CPU": 1.0, "worker_node": 1.0}], lambda: NODES, "a", wait=60, sleep=slept.append)
    assert slept == []


def test_await_placement_waits_for_a_node_an_autoscaler_adds():
    gpu_node = {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}}
    answers = iter([NODES, NODES, [*NODES, gpu_node]])
    slept = []
    await_placement([{"GPU": 1.0}], lambda: next(answers), "a", wait=60, sleep=slept.append)
    assert len(slept) == 2


def test_await_placement_ends_in_one_line_when_no_node_comes():
    with pytest.raises(UnplaceableError) as e:
        await_placement([{"GPU": 1.0}], lambda: NODES, "127.0.0.2:6379", wait=0, sleep=lambda s: None)
    assert "\n" not in str(e.value) and "(GPU 1)" in str(e.value) and "waited 0 s" in str(e.value)


def test_await_placement_does_not_check_a_cluster_that_cannot_list_its_nodes():
    def fails():
        raise RuntimeError("Ray Client: not supported")

    await_placement([{"GPU": 1.0}], fails, "ray://h:10001", wait=0)
