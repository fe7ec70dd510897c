import { get } from "../../api";
import { Status, useLoad } from "../../components";

interface Health {
  status: string;
  version: string;
  disabled_models: Record<string, string> | string[];
  deployments: Record<string, string | number | boolean>[];
}

export function DeploymentHealth() {
  const health = useLoad(() => get<Health>("/health"));
  return (
    <>
      <h1>Deployment health</h1>
      <Status loaded={health}>
        {(h) => {
          const columns = [...new Set(h.deployments.flatMap((d) => Object.keys(d)))];
          return (
            <>
              <p>
                Gateway {h.version}: {h.status}
              </p>
              <table>
                <caption>Deployments</caption>
                <thead>
                  <tr>
                    {columns.map((c) => (
                      <th scope="col" key={c}>
                        {c.replace(/_/g, " ")}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {h.deployments.map((d, i) => (
                    <tr key={i}>
                      {columns.map((c) => (
                        <td key={c}>{d[c] === undefined ? "" : String(d[c])}</td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          );
        }}
      </Status>
    </>
  );
}
