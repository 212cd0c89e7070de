# Sourced by submit-yarn.sh and submit-k8s.sh: what every master shares. Checks the planner's sizing is in the
# environment, zips interest_core + spark_jobs (the ETL needs nothing else) and sets
#   REPO, PYTHON (the driver's interpreter), ETL_FILE, and the arrays COMMON (spark-submit flags every master takes)
#   and PLANNED (the ETL's --set flags from the planner, placed before the user's so a --set of theirs wins).
: "${SPARK_EXECUTORS:?size the job first: eval \"\$(interest plan --events N --spark-env)\"}"
: "${SPARK_EXECUTOR_CORES:?}" "${SPARK_EXECUTOR_MEMORY:?}" "${SPARK_EXECUTOR_MEMORY_OVERHEAD:?}"
: "${SPARK_SHUFFLE_PARTITIONS:?}" "${ETL_NUM_FILES:?}"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYSPARK_PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$REPO" && "$PYTHON" -m zipfile -c "$WORK/interest_trainer.zip" interest_core spark_jobs)
ETL_FILE="$REPO/spark_jobs/etl.py"
COMMON=(--name interest-etl
        --conf "spark.executor.memoryOverhead=$SPARK_EXECUTOR_MEMORY_OVERHEAD"
        --conf spark.dynamicAllocation.enabled=false
        --conf "spark.pyspark.python=${EXECUTOR_PYTHON:-python3}" --conf "spark.pyspark.driver.python=$PYTHON"
        --driver-java-options -XX:+ExitOnOutOfMemoryError
        --conf spark.executor.extraJavaOptions=-XX:+ExitOnOutOfMemoryError
        --py-files "$WORK/interest_trainer.zip")
PLANNED=(--set "data.shuffle_partitions=$SPARK_SHUFFLE_PARTITIONS" --set "data.num_files=$ETL_NUM_FILES")
