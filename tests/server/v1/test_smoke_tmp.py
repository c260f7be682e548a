import openai
from tests.server.v1.conftest import Patchbay

async def test_smoke(patchbay: Patchbay) -> None:
    client = openai.AsyncOpenAI(base_url=patchbay.url + "/v1", api_key=patchbay.key, max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(model="default", messages=[{"role": "user", "content": "hi"}])
    print(dict(raw.headers))
    r = raw.parse()
    print(r)
    s = await client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True})
    async for c in s:
        print(c)
