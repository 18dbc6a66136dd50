# One image for the Ray head and the workers, under `ray up` (cluster/aws/) and KubeRay (cluster/k8s/).
#   docker build --build-arg MONOSWEEP_COMMIT=$(git rev-parse --short=12 HEAD) -t ghcr.io/YOUR_ORG/monosweep:2.60.0 .
#   docker push ghcr.io/YOUR_ORG/monosweep:2.60.0
# The Ray version is pinned once, in pyproject.toml; tests/cluster/test_cluster_files.py fails if RAY_VERSION here, an
# image tag or a rayVersion in cluster/ drifts from it. Not ray-ml: deprecated since Ray 2.31, gone after 2.49.
ARG RAY_VERSION=2.60.0
ARG CUDA=cu128
FROM rayproject/ray:${RAY_VERSION}-py311-${CUDA}
ARG CUDA

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN mkdir -p /home/ray/monosweep
WORKDIR /home/ray/monosweep

# 1. Dependencies, cached until pyproject.toml changes. The install is the README's `pip install -e .` (the
#    image's Python is already an environment of its own, the one Ray lives in), run on empty package stubs,
#    with two additions: Ray's compiled pins of the packages the image already has as constraints, so our
#    install cannot move what Ray runs on (cluster/image_constraints.py says why not the whole file), and
#    PyTorch's index for the image's CUDA.
COPY --chown=ray:users pyproject.toml cluster/image_constraints.py ./
RUN mkdir methods sweep && touch README.md methods/__init__.py sweep/__init__.py \
    && python image_constraints.py /home/ray/requirements_compiled*.txt > /tmp/ray-constraints.txt \
    && pip install --no-cache-dir -c /tmp/ray-constraints.txt \
        --extra-index-url "https://download.pytorch.org/whl/${CUDA}" -e . \
    && rm image_constraints.py /tmp/ray-constraints.txt

# 2. The source. The editable install maps the packages to these folders, so nothing is reinstalled.
#    No credentials (IAM roles / IRSA give S3 access) and no data (probe sets come from S3 or `demo`).
COPY --chown=ray:users README.md ./
COPY --chown=ray:users methods/ methods/
COPY --chown=ray:users sweep/ sweep/
COPY --chown=ray:users examples/ examples/

# 3. Provenance: `.dockerignore` keeps .git out, so the commit given at build time is baked into the package
#    (methods/_build.json); every trial's MLflow run then names the code it ran (methods/provenance.py).
ARG MONOSWEEP_COMMIT=unknown
RUN python -m methods.provenance --bake "$MONOSWEEP_COMMIT" && monosweep --help > /dev/null
