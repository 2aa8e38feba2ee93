"""A swipe sharded over 2 gloo processes writes the numbers of a single-process swipe."""
from __future__ import annotations

import json
import math

import pytest
import torch

from robrank.training.distributed import DistInfo
from robrank.plugins import get_registry

BATCH, MAX_BATCHES = 4, 3  # 12 queries: batches [0-3][4-7][8-11]; rank 0 runs the 1st and 3rd, rank 1 the 2nd


def _numbers(path):
    payload = json.loads(path.read_text())
    return payload, {a["spec"]: (a["count"], a["orig"], a["adv"]) for a in payload["attacks"]}


def test_shards_cover_the_queries_once():
    from robrank.swipe.distributed import shard

    order = torch.arange(11)
    parts = [shard(order, DistInfo(r, 3, r)) for r in range(3)]
    assert [p.numel() for p in parts] == [4, 4, 3]
    assert torch.equal(torch.cat(parts), order)
    # whole batches of 3, round robin: [0 1 2] [3 4 5] [6 7 8] [9 10] -> ranks 0, 1, 0, 1
    assert shard(order, DistInfo(0, 2, 0), 3).tolist() == [0, 1, 2, 6, 7, 8]
    assert shard(order, DistInfo(1, 2, 1), 3).tolist() == [3, 4, 5, 9, 10]


@pytest.mark.timeout(400)  # a hang guard: on a loaded 2-core machine the two swipes alone take over two minutes
def test_two_gloo_ranks_match_one_process(untrained_run, tmp_path):
    from robrank.swipe import swipe
    from robrank.swipe.distributed import swipe_devices

    single = swipe(untrained_run, "rob28", output=tmp_path / "single.json", batch_size=BATCH, max_batches=MAX_BATCHES, progress=False, registry=get_registry())
    ddp = swipe_devices(untrained_run, "rob28", 2, output=tmp_path / "ddp.json", batch_size=BATCH, max_batches=MAX_BATCHES,
                        progress=False, registry=get_registry())
    one, one_numbers = _numbers(single)
    two, two_numbers = _numbers(ddp)
    assert two["options"]["world_size"] == 2 and one["options"]["world_size"] == 1
    assert two["finished"] is not None and set(two_numbers) == set(one["planned"])
    for spec, (count, orig, adv) in one_numbers.items():
        count2, orig2, adv2 = two_numbers[spec]
        assert count == count2 == BATCH * MAX_BATCHES
        for mine, theirs in ((orig, orig2), (adv, adv2)):
            assert mine.keys() == theirs.keys()
            for key in mine:
                assert math.isclose(mine[key], theirs[key], rel_tol=1e-12, abs_tol=1e-12), (spec, key, mine[key], theirs[key])
    assert math.isclose(one["ers"]["ers"], two["ers"]["ers"], rel_tol=1e-9)


def test_bad_device_count_is_a_config_error(untrained_run, tmp_path):
    from robrank.errors import ConfigError
    from robrank.swipe.distributed import swipe_devices

    with pytest.raises(ConfigError, match="--devices"):
        swipe_devices(untrained_run, "rob28", 0, output=tmp_path / "x.json", progress=False, registry=get_registry())
