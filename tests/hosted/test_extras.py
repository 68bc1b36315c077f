"""Every hosted module imports without its SDK; using it then names the missing extra.

Each case runs in a fresh interpreter where the SDK's package is blocked, so the test
means the same whether or not the extra is installed here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

FLOW_ENVIRONMENT = (
    "import os\n"
    "for name in ('FLOW_LLM_API_KEY', 'FLOW_LLM_BASE_URL', "
    "'FLOW_EMBEDDING_API_KEY', 'FLOW_EMBEDDING_BASE_URL'):\n"
    "    os.environ[name] = 'x'\n"
)

CASES = {
    "tablestore-memory": (
        "tablestore",
        "from agentmem.services.memory import TablestoreMemoryService as make",
        "make(tablestore_client=object())",
    ),
    "tablestore-sessions": (
        "tablestore",
        "from agentmem.services.session_history import TablestoreSessionHistoryService as make",
        "make(tablestore_client=object())",
    ),
    "tablestore-client": (
        "tablestore",
        "from agentmem.services.utils.tablestore_service_utils import "
        "create_tablestore_client as make",
        "make('https://e', 'i', 'k', 's')",
    ),
    "tablestore-factory": (
        "tablestore",
        "from agentmem import MemoryServiceFactory",
        "MemoryServiceFactory.create('tablestore', environ={}, tablestore_client=object())",
    ),
    "mem0": (
        "mem0",
        "from agentmem.services.memory import Mem0MemoryService as make",
        "make(api_key='k')",
    ),
    "reme-personal": (
        "reme_ai",
        FLOW_ENVIRONMENT + "from agentmem.services.memory import ReMePersonalMemoryService as make",
        "make()",
    ),
    "reme-task": (
        "reme_ai",
        FLOW_ENVIRONMENT + "from agentmem import MemoryServiceFactory",
        "MemoryServiceFactory.create('reme_task', environ={})",
    ),
    "agentscope": (
        "agentscope",
        "from agentmem.adapters.agentscope.long_term_memory import AgentScopeLongTermMemory\n"
        "from agentmem import InMemoryMemoryService",
        "AgentScopeLongTermMemory(service=InMemoryMemoryService(), user_id='u')",
    ),
}

EXTRAS = {"tablestore": "tablestore", "mem0": "mem0", "reme_ai": "reme", "agentscope": "agentscope"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_missing_sdk_names_the_extra(case: str) -> None:
    blocked, imports, use = CASES[case]
    template = textwrap.dedent(
        """
        import sys
        sys.modules[BLOCKED] = None  # as if the package were not installed
        IMPORTS
        from agentmem import MissingExtraError
        try:
            USE
        except MissingExtraError as exc:
            print(exc.extra)
            print(exc)
        """
    )
    code = (
        template.replace("BLOCKED", repr(blocked)).replace("IMPORTS", imports).replace("USE", use)
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    extra, message = result.stdout.splitlines()[:2]
    assert extra == EXTRAS[blocked]
    assert f"pip install 'agentmem-services[{extra}]'" in message
