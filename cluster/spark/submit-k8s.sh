#!/usr/bin/env bash
# The ETL on Spark's Kubernetes master (client mode: the driver runs where this script runs, e.g. the Ray head pod
# of cluster/kuberay/; executors are pods), executors sized by the capacity planner (README: On a cluster):
#   eval "$(interest plan --config base --events 1e9 --spark-env)"
#   K8S_API=https://kubernetes.default.svc SPARK_IMAGE=REGISTRY/interest-spark:0.1.0 \
#     cluster/spark/submit-k8s.sh --input /shared/events --format taobao --output /shared/shards \
#     --config base --hmac-key-file /secrets/hmac/key
# SPARK_IMAGE: a Spark 4.3 Python image (Spark's docker-image-tool.sh -p) with Python 3.11 and requirements.lock
# installed (executors run its python3, or $EXECUTOR_PYTHON); executors mount the shared volume (PVC
# interest-shared) at /shared like the Ray pods. Every argument goes to spark_jobs/etl.py after the planner's --set
# flags (so a --set of yours wins). Overrides: SPARK_SUBMIT, K8S_NAMESPACE (default), K8S_SERVICE_ACCOUNT (spark).
set -euo pipefail
: "${K8S_API:?the Kubernetes API server, e.g. K8S_API=https://kubernetes.default.svc}"
: "${SPARK_IMAGE:?an image with Spark 4.3, Python 3.11 and requirements.lock, e.g. SPARK_IMAGE=REGISTRY/interest-spark:0.1.0}"
source "$(dirname "$0")/common.sh"
VOL=spark.kubernetes.executor.volumes.persistentVolumeClaim.shared
"${SPARK_SUBMIT:-spark-submit}" --master "k8s://$K8S_API" --deploy-mode client \
  --conf "spark.kubernetes.container.image=$SPARK_IMAGE" \
  --conf "spark.kubernetes.namespace=${K8S_NAMESPACE:-default}" \
  --conf "spark.kubernetes.authenticate.driver.serviceAccountName=${K8S_SERVICE_ACCOUNT:-spark}" \
  --conf "$VOL.options.claimName=interest-shared" --conf "$VOL.mount.path=/shared" \
  --conf "spark.executor.instances=$SPARK_EXECUTORS" --conf "spark.executor.cores=$SPARK_EXECUTOR_CORES" \
  --conf "spark.executor.memory=$SPARK_EXECUTOR_MEMORY" "${COMMON[@]}" "$ETL_FILE" "${PLANNED[@]}" "$@"
