/** Host metadata, read once per process from the environment (no network on any path). */
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Host } from "./types.js";
import { SDK_VERSION } from "./version.js";

const K8S_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

export function localHost(env: NodeJS.ProcessEnv, serviceName: string | null, detect: boolean): Host {
  const base: Host = {
    hostname: null,
    cloud: null,
    region: null,
    instance_id: null,
    k8s_pod: null,
    k8s_namespace: null,
    k8s_node: null,
    service_name: serviceName ?? env.OTEL_SERVICE_NAME ?? env.SERVICE_NAME ?? null,
    sdk_version: SDK_VERSION,
    language: "node",
  };
  if (!detect) return base;
  let namespace = env.POD_NAMESPACE ?? env.K8S_NAMESPACE ?? null;
  if (namespace === null && existsSync(K8S_NAMESPACE_FILE)) {
    namespace = readFileSync(K8S_NAMESPACE_FILE, "utf8").trim() || null;
  }
  const inK8s = env.KUBERNETES_SERVICE_HOST !== undefined;
  return {
    ...base,
    hostname: hostname(),
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? null,
    k8s_pod: env.POD_NAME ?? (inK8s ? (env.HOSTNAME ?? null) : null),
    k8s_namespace: namespace,
    k8s_node: env.NODE_NAME ?? env.K8S_NODE_NAME ?? null,
  };
}
