import re

import yaml

from tipkit import paths


def test_environment_yml_pins_equal_requirements_txt():
    reqs = [l.strip() for l in (paths.REPO / "requirements.txt").read_text().splitlines()
            if l.strip() and not l.startswith("#")]
    env = yaml.safe_load((paths.REPO / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert [p for p in pip if p != "-e ."] == reqs
    pins = dict(r.split("==") for r in reqs)
    assert (pins["torch"], pins["torchvision"], pins["open_clip_torch"]) == ("2.14.1", "0.29.1", "3.3.0")
    assert re.match(r"1\.", pins["jupyter-book"])  # 2.x cannot build offline and ignores _config.yml/_toc.yml


def test_data_check_cli_reports_a_missing_dataset(tmp_path, capsys):
    from tipkit import cli

    code = cli.main(["data", "check", "--dataset", "dtd", "--root", str(tmp_path)])
    out = capsys.readouterr()
    assert code != 0
    assert "dtd" in (out.out + out.err) and "split_zhou_DescribableTextures.json" in (out.out + out.err)
