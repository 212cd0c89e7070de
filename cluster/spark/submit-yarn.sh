#!/usr/bin/env bash
# The ETL on a YARN cluster, executors sized by the capacity planner (README: On a cluster):
#   eval "$(interest plan --config base --events 1e9 --spark-env)"
#   cluster/spark/submit-yarn.sh --input hdfs:///events --format taobao --output /shared/shards \
#     --config base --hmac-key-file /secrets/hmac/key
# Every argument goes to spark_jobs/etl.py (`interest etl`'s flags) after the planner's --set flags (so a --set of
# yours wins). The job needs only interest_core and spark_jobs (zipped here into --py-files); the driver runs
# $PYSPARK_PYTHON and executors $EXECUTOR_PYTHON (default python3), a Python 3.11 with requirements.lock installed on
# every node (or shipped with --archives). Overrides: SPARK_SUBMIT (the spark-submit binary), SPARK_MASTER (default
# yarn; local[2] runs the same command on this machine), DEPLOY_MODE (client|cluster).
set -euo pipefail
source "$(dirname "$0")/common.sh"
"${SPARK_SUBMIT:-spark-submit}" --master "${SPARK_MASTER:-yarn}" --deploy-mode "${DEPLOY_MODE:-client}" \
  --num-executors "$SPARK_EXECUTORS" --executor-cores "$SPARK_EXECUTOR_CORES" \
  --executor-memory "$SPARK_EXECUTOR_MEMORY" "${COMMON[@]}" "$ETL_FILE" "${PLANNED[@]}" "$@"
