/** The UsageEvent record as it is encoded (schemas/.../tokenline.UsageEvent.avsc). */
export type Provider =
  | "openai"
  | "azure_openai"
  | "anthropic"
  | "bedrock"
  | "gemini"
  | "other"
  | "vertex_ai";
export type Operation =
  | "chat"
  | "responses"
  | "completion"
  | "embedding"
  | "image"
  | "audio"
  | "other";
export type UsageSource = "reported" | "estimated" | "none";

/** Disjoint token buckets: no token is counted in two of them. */
export interface Usage {
  input_tokens: number;
  cache_read_input_tokens: number;
  cache_write_input_tokens: number;
  cache_write_5m_input_tokens: number | null;
  cache_write_1h_input_tokens: number | null;
  output_tokens: number;
  reasoning_tokens: number;
  provider_total_tokens: number | null;
  mismatch: string | null;
}

export interface Host {
  hostname: string | null;
  cloud: string | null;
  region: string | null;
  instance_id: string | null;
  k8s_pod: string | null;
  k8s_namespace: string | null;
  k8s_node: string | null;
  service_name: string | null;
  sdk_version: string | null;
  language: string | null;
}

export interface UsageEvent {
  event_id: string;
  producer_id: string;
  producer_seq: number;
  /** Microseconds since the Unix epoch, UTC. */
  occurred_at: number;
  tenant_id: string;
  project: string | null;
  user_id: string | null;
  session_id: string | null;
  team: string | null;
  tags: Record<string, string>;
  provider: Provider;
  operation: Operation;
  request_model: string | null;
  response_model: string | null;
  deployment: string | null;
  region: string | null;
  batch: boolean;
  usage: Usage;
  usage_source: UsageSource;
  streamed: boolean;
  latency_ms: number;
  time_to_first_token_ms: number | null;
  success: boolean;
  error_type: string | null;
  error_message: string | null;
  http_status: number | null;
  provider_request_id: string | null;
  host: Host;
}
