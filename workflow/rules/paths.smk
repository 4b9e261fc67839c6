# Where the workflow's own files are: the engine, schemas and templates are found from here, not
# from the working directory, so that the workflow also runs as a module of another folder's
# Snakefile (README, "Your own cohort").
import io
import os
import sys
import tarfile
import tempfile


def hosted_commit(basedir):
    """The commit a module read from GitHub or GitLab is at (its tag, branch or commit resolved in
    Snakemake's own clone of the repository)."""
    basedir.fetch_if_required()
    return basedir.hosted_repo.repo.commit(basedir.ref).hexsha


def hosted_source(basedir):
    """Where a module read from GitHub or GitLab came from, for the provenance: the repository, the
    ref the deployment names (tag, branch or commit) and its commit; None for a folder on disk,
    whose commit git reads when it is a checkout."""
    if os.path.isdir(str(basedir)):
        return None
    return {
        "source": f"{basedir.host}/{basedir.repo}",
        "ref": basedir.ref,
        "commit": hosted_commit(basedir)[:12],
    }


def local_workflow_dir(basedir):
    """The folder `basedir` on disk. For a module read from GitHub or GitLab (`snakedeploy
    deploy-workflow`), whose files Snakemake fetches one by one as rules name them, the folder in
    the commit's whole tree, unpacked once from Snakemake's own clone of the repository into
    .snakemake/workflow_sources/: the engine, the resources and the templates are read as files."""
    if os.path.isdir(str(basedir)):
        return str(basedir)
    repository = basedir.hosted_repo.repo
    commit = hosted_commit(basedir)
    top = os.path.abspath(os.path.join(".snakemake", "workflow_sources", commit))
    if not os.path.isdir(top):
        os.makedirs(os.path.dirname(top), exist_ok=True)
        unpacked = tempfile.mkdtemp(dir=os.path.dirname(top))
        archive = repository.git.archive(commit, stdout_as_string=False)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(unpacked, filter="data")
        # a run that stopped while unpacking leaves no folder that looks complete
        os.replace(unpacked, top)
    return os.path.join(top, basedir.path)


# workflow/: this file's folder is workflow/rules/
WORKFLOW_DIR = os.path.dirname(local_workflow_dir(workflow.current_basedir))
# The top of the repository: VERSION and the shipped resources/.
WORKFLOW_TOP = os.path.dirname(WORKFLOW_DIR)
# The repository, ref and commit of a module read from GitHub or GitLab (None otherwise)
WORKFLOW_SOURCE = hosted_source(workflow.current_basedir)
LIB_DIR = os.path.join(WORKFLOW_DIR, "lib")
sys.path.insert(0, LIB_DIR)
