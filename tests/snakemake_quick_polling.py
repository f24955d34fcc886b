"""Snakemake with the SLURM executor asking for job states every 2 s, for the SLURM tests.

The plugin waits 10 s longer after every status check that finds no job finished (up to 3
minutes); on the tiny test DAG, whose jobs take seconds, that waiting was most of the tests'
wall time. Only how often this client polls changes: submission, job states, retries and logs
are the real SLURM's.

    python tests/snakemake_quick_polling.py --profile workflow/profiles/slurm-test ...
"""

from snakemake.cli import main
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor

POLL_SECONDS = 2

# The plugin sets this after every check; a fixed value ignores its backoff.
RemoteExecutor.next_seconds_between_status_checks = property(lambda executor: POLL_SECONDS,
                                                             lambda executor, seconds: None)

if __name__ == "__main__":
    main()
