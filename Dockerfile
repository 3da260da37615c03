# The kubeplane operator image: one image for every operator, the command picks which one runs
# (`kubeplane run controllers`, ...). Built by `make image` (hack/image.sh).
#
# BASE_IMAGE must provide python3 >= 3.11 with the venv module. With a registry, the default
# python:3.11-slim-bookworm; on a machine without one, hack/base-image.sh builds an equivalent
# from debootstrap (kubeplane-base:bookworm). Both stages use the same base on purpose: the venv's
# bin/python links to the base's interpreter (/usr/local/bin/python3 in python:*-slim,
# /usr/bin/python3 in the debootstrap base), so the venv copied into the final stage finds it.
#
# Only the legacy builder is assumed (no BuildKit): no `# syntax=`, no `RUN --mount`, no heredocs.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 PIP_CERT=/tmp/build-ca.pem
# EXTRA_CA_CERTS (PEM text, optional): CAs of a TLS-intercepting proxy between this build and PyPI
# (hack/image.sh passes the host's /usr/local/share/ca-certificates). Trusted by pip in this stage
# only; the final image trusts just the base's CA bundle.
ARG EXTRA_CA_CERTS=""
RUN { cat /etc/ssl/certs/ca-certificates.crt; printf '%s\n' "$EXTRA_CA_CERTS"; } > /tmp/build-ca.pem
# The venv lives at the same path here and in the final stage: its scripts' shebangs are absolute.
RUN python3 -m venv /opt/kubeplane
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so a code change rebuilds only the last layers:
# the runtime dependencies and the build backend ([build-system] requires).
COPY pyproject.toml README.md ./
RUN /opt/kubeplane/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); print("\n".join(p["project"]["dependencies"] + p["build-system"]["requires"]))' \
      > /tmp/requirements.txt \
 && /opt/kubeplane/bin/pip install -r /tmp/requirements.txt

# The project itself: a wheel (built with the backend installed above, so a code change downloads
# nothing), installed non-editable without dev extras. Then the installers go: nothing at runtime
# needs pip or setuptools.
COPY operators/ operators/
RUN /opt/kubeplane/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
 && /opt/kubeplane/bin/pip install --no-deps /tmp/wheels/kubeplane-*.whl \
 && /opt/kubeplane/bin/pip uninstall -y -q pip setuptools \
 && /opt/kubeplane/bin/kubeplane --version


FROM ${BASE_IMAGE}
# A fixed non-root uid/gid (65532, as in distroless "nonroot") that Kubernetes securityContexts can
# name; home is /tmp, the only place worth writing to (an emptyDir when the root fs is read-only).
# (-K: 65532 is above login.defs' regular range, which is the point; --no-log-init: a uid this high
# would otherwise grow a sparse lastlog/faillog file.)
RUN groupadd --gid 65532 -K GID_MAX=65534 kubeplane \
 && useradd --uid 65532 --gid 65532 -K UID_MAX=65534 --no-log-init \
      --home-dir /tmp --no-create-home --shell /usr/sbin/nologin kubeplane
COPY --from=builder /opt/kubeplane /opt/kubeplane
# PYTHONDONTWRITEBYTECODE: with a read-only root fs Python must not try to write .pyc files
# (pip already compiled them at install time).
ENV PATH=/opt/kubeplane/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
# No ENTRYPOINT: `docker run IMAGE kubeplane run controllers`, as the chart runs it.
CMD ["kubeplane", "--help"]

# Last, so a new revision does not invalidate any cached layer above.
ARG BASE_IMAGE
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kubeplane" \
      org.opencontainers.image.description="Kubernetes control-plane components as Kopf operators; the command selects the operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
