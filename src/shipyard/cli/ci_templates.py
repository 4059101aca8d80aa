"""The CI configurations `shipyard init --ci github|gitlab|circleci` writes.

Each builds the pushed commit with `shipyard build --push` (BuildKit, layer cache from the registry),
then records the pushed digest as a release with `shipyard release create` and deploys it to the
environment of the branch (the `pipelines:` of shipyard.yml), following the deployment to its end.
The controller's URL and a `ci` token come from the CI's variables, never from the repository.
"""

from __future__ import annotations

from collections.abc import Sequence

PATHS = {
    "github": ".github/workflows/shipyard.yml",
    "gitlab": ".gitlab-ci.yml",
    "circleci": ".circleci/config.yml",
}

# The shell that runs in every CI: build, read the digest, release and deploy. $SHA and $BRANCH are
# set by each CI's wrapper below.
SHIP_SCRIPT = """\
case "$BRANCH" in
{cases}  *) echo "branch $BRANCH ships nowhere"; exit 0 ;;
esac
shipyard build --push --ref "$SHA" --json > build.json
DIGEST=$(python3 -c 'import json; print(json.load(open("build.json"))["digest"])')
shipyard release create --image "{image}@$DIGEST" --git-sha "$SHA" --deploy "$ENVIRONMENT" --follow
"""


def ship_script(image: str, pipelines: Sequence[tuple[str, str]]) -> str:
    cases = "".join(f"  {branch}) ENVIRONMENT={environment} ;;\n" for branch, environment in pipelines)
    return SHIP_SCRIPT.format(cases=cases, image=image)


def _indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" if line else "\n" for line in text.splitlines())


def render(ci: str, image: str, pipelines: Sequence[tuple[str, str]]) -> str:
    script = ship_script(image, pipelines)
    branches = ", ".join(branch for branch, _ in pipelines)
    if ci == "github":
        return (
            "# Written by `shipyard init --ci github`: build, push, release and deploy each push to a\n"
            "# pipeline branch. Set the variable SHIPYARD_CONTROLLER and the secret SHIPYARD_TOKEN (a ci\n"
            "# token: shipyard token create github-ci --role ci --app APP).\n"
            "name: shipyard\n"
            "on:\n"
            "  push:\n"
            f"    branches: [{branches}]\n"
            "jobs:\n"
            "  ship:\n"
            "    runs-on: ubuntu-latest\n"
            "    steps:\n"
            "      - uses: actions/checkout@v4\n"
            "        with:\n"
            "          fetch-depth: 0\n"
            "      - run: pip install shipyard\n"
            "      - name: build, push, release, deploy\n"
            "        env:\n"
            "          SHIPYARD_CONTROLLER: ${{ vars.SHIPYARD_CONTROLLER }}\n"
            "          SHIPYARD_TOKEN: ${{ secrets.SHIPYARD_TOKEN }}\n"
            "          REGISTRY_USER: ${{ vars.REGISTRY_USER }}\n"
            "          REGISTRY_PASSWORD: ${{ secrets.REGISTRY_PASSWORD }}\n"
            "          SHA: ${{ github.sha }}\n"
            "          BRANCH: ${{ github.ref_name }}\n"
            "        run: |\n" + _indent(script, 10)
        )
    if ci == "gitlab":
        rules = "".join(f'    - if: $CI_COMMIT_BRANCH == "{branch}"\n' for branch, _ in pipelines)
        return (
            "# Written by `shipyard init --ci gitlab`: build, push, release and deploy each push to a\n"
            "# pipeline branch. Set the CI/CD variables SHIPYARD_CONTROLLER and SHIPYARD_TOKEN (masked; a\n"
            "# ci token: shipyard token create gitlab-ci --role ci --app APP).\n"
            "ship:\n"
            "  image: python:3.11\n"
            "  services: [docker:dind]\n"
            "  variables:\n"
            "    DOCKER_HOST: tcp://docker:2375\n"
            "  rules:\n" + rules + "  script:\n"
            "    - pip install shipyard\n"
            "    - |\n"
            "      SHA=$CI_COMMIT_SHA BRANCH=$CI_COMMIT_BRANCH\n" + _indent(script, 6)
        )
    if ci == "circleci":
        only = "".join(f"                - {branch}\n" for branch, _ in pipelines)
        return (
            "# Written by `shipyard init --ci circleci`: build, push, release and deploy each push to a\n"
            "# pipeline branch. Set SHIPYARD_CONTROLLER and SHIPYARD_TOKEN (a ci token: shipyard token\n"
            "# create circleci --role ci --app APP) in the project's environment variables.\n"
            "version: 2.1\n"
            "jobs:\n"
            "  ship:\n"
            "    docker:\n"
            "      - image: cimg/python:3.11\n"
            "    steps:\n"
            "      - checkout\n"
            "      - setup_remote_docker\n"
            "      - run: pip install shipyard\n"
            "      - run:\n"
            "          name: build, push, release, deploy\n"
            "          command: |\n"
            "            SHA=$CIRCLE_SHA1 BRANCH=$CIRCLE_BRANCH\n" + _indent(script, 12) + "workflows:\n"
            "  ship:\n"
            "    jobs:\n"
            "      - ship:\n"
            "          filters:\n"
            "            branches:\n"
            "              only:\n" + only
        )
    raise ValueError(ci)
