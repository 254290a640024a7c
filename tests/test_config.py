import pytest

from tipkit import config, data
from tipkit.data.fewshot_official import sample_few_shot_official
from tipkit.errors import TipkitError
from tipkit.experiments import pipeline


def test_paper_dataset_defaults_come_from_its_config_file():
    cfg = config.make_config(dataset="eurosat")
    assert (cfg.backbone, cfg.pretrained, cfg.epochs, cfg.search_scale) == ("RN50", "openai", 100, [12.0, 10.0])
    assert config.make_config(dataset="eurosat", epochs=3).epochs == 3  # explicit values win
    assert config.make_config().backbone == "tipkit-standin-mini"  # the default stays the stand-in


def test_unknown_sampler_is_rejected():
    with pytest.raises(TipkitError, match="unknown sampler 'coop'; known: official, tipkit"):
        config.make_config(sampler="coop")


def test_official_sampler_drives_the_run():
    cfg = config.make_config(dataset="synthetic", pretrained="none", shots=3, sampler="official", epochs=1,
                             augment_views=1)
    rec = pipeline.run(cfg)
    train = data.get_dataset("synthetic").split("train")
    assert [m["index"] for m in rec["manifest"]] == list(sample_few_shot_official(train.labels, 3, cfg.seed))
    assert rec["data"] == {"skipped_images": 0, "skipped": []}
