import { gatewayBase } from "../api";
import { CopyButton } from "../components";

const KEY = "YOUR_WAYPOST_TOKEN";

export function snippets(base: string, model: string): { title: string; code: string }[] {
  const v1 = `${base}/v1`;
  return [
    {
      title: "OpenAI SDK, Python",
      code: `from openai import OpenAI\n\nclient = OpenAI(base_url="${v1}", api_key="${KEY}")\nanswer = client.chat.completions.create(\n    model="${model}", messages=[{"role": "user", "content": "Hello"}]\n)\nprint(answer.choices[0].message.content)`,
    },
    {
      title: "OpenAI SDK, Node",
      code: `import OpenAI from "openai";\n\nconst client = new OpenAI({ baseURL: "${v1}", apiKey: "${KEY}" });\nconst answer = await client.chat.completions.create({\n  model: "${model}",\n  messages: [{ role: "user", content: "Hello" }],\n});\nconsole.log(answer.choices[0].message.content);`,
    },
    {
      title: "Anthropic SDK, Python",
      code: `from anthropic import Anthropic\n\nclient = Anthropic(base_url="${base}", api_key="${KEY}")\nanswer = client.messages.create(\n    model="${model}", max_tokens=1024, messages=[{"role": "user", "content": "Hello"}]\n)\nprint(answer.content[0].text)`,
    },
    {
      title: "Anthropic SDK, Node",
      code: `import Anthropic from "@anthropic-ai/sdk";\n\nconst client = new Anthropic({ baseURL: "${base}", apiKey: "${KEY}" });\nconst answer = await client.messages.create({\n  model: "${model}",\n  max_tokens: 1024,\n  messages: [{ role: "user", content: "Hello" }],\n});\nconsole.log(answer.content);`,
    },
    {
      title: "curl",
      code: `curl ${v1}/chat/completions \\\n  -H "Authorization: Bearer ${KEY}" \\\n  -H "Content-Type: application/json" \\\n  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello"}]}'`,
    },
    {
      title: "Claude Code",
      code: `export ANTHROPIC_BASE_URL="${base}"\nexport ANTHROPIC_AUTH_TOKEN="${KEY}"\nexport ANTHROPIC_MODEL="${model}"\nclaude`,
    },
  ];
}

export function Snippets() {
  const base = gatewayBase.href.replace(/\/$/, "");
  return (
    <>
      <h1>Snippets</h1>
      <p>
        This gateway's base URL is <code>{base}</code>. Replace <code>{KEY}</code> with a token from My tokens and the
        model with one from My models.
      </p>
      {snippets(base, "MODEL_NAME").map((s) => (
        <section key={s.title} aria-label={s.title}>
          <h2>{s.title}</h2>
          <pre>
            <code>{s.code}</code>
          </pre>
          <CopyButton text={s.code} label={`Copy ${s.title}`} />
        </section>
      ))}
    </>
  );
}
