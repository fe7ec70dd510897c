import { get, type List } from "../api";
import { Status, useLoad } from "../components";

interface ModelSummary {
  name: string;
  provider: string;
  source: string;
  public: boolean;
}

export function MyModels() {
  const models = useLoad(() => get<List<ModelSummary>>("/me/models"));
  return (
    <>
      <h1>My models</h1>
      <Status loaded={models}>
        {(list) =>
          list.data.length === 0 ? (
            <p>No model is available to you yet.</p>
          ) : (
            <table>
              <caption>Models you may call</caption>
              <thead>
                <tr>
                  <th scope="col">Model</th>
                  <th scope="col">Provider</th>
                  <th scope="col">Access</th>
                </tr>
              </thead>
              <tbody>
                {list.data.map((m) => (
                  <tr key={m.name}>
                    <td>{m.name}</td>
                    <td>{m.provider}</td>
                    <td>{m.public ? "everyone" : "assigned"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Status>
    </>
  );
}
