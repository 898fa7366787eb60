# The one image of brainage_tf on a cluster: every Kubeflow Pipelines component runs in it
# (docs/pipelines.md), and so does every Beam SDK worker of the ingest on Dataflow or Flink
# (docs/ingest.md, "On a cluster"). Tag it with pipelines.components.DEFAULT_IMAGE:
#
#   docker build -t REGISTRY/brainage-tf:0.1.0 . && docker push REGISTRY/brainage-tf:0.1.0
FROM python:3.11-slim

# Beam's SDK worker launcher, from Beam's own image of the release setup.cfg pins: runners start
# workers through this entrypoint; kfp gives each component its own command instead.
COPY --from=apache/beam_python3.11_sdk:2.77.0 /opt/apache/beam /opt/apache/beam

WORKDIR /opt/brainage_tf
COPY . .
# The package as setup.cfg installs it: brainage_tf, tfds_builders, pipelines, with kfp (the extra);
# Beam's gcp extra (at setup.cfg's Beam pin) for Dataflow and gs:// paths. Datasets or exports with
# skull_strip=deepbet need the skullstrip extra on the workers (about 1 GB more, CPU-only torch):
#   docker build --build-arg EXTRAS=pipelines,skullstrip -t ... .
ARG EXTRAS=pipelines
RUN case ",$EXTRAS," in *,skullstrip,*) \
        pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu ;; \
    esac \
    && pip install --no-cache-dir ".[$EXTRAS]" "apache-beam[gcp]" && pip check

ENTRYPOINT ["/opt/apache/beam/boot"]
