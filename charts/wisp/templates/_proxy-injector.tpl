{{/*
The injector Secret (when dict key crt is set) and the webhook
configuration (dict root, ca, crt, key).
*/}}
{{- define "wisp.injectorWebhook" -}}
{{- $ns := include "wisp.namespace" .root -}}
{{- $p := .root.Values.proxyInjector -}}
{{- if .crt }}
---
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata:
  name: wisp-proxy-injector-k8s-tls
  namespace: {{ $ns }}
  labels:
    {{- include "wisp.labels" .root | nindent 4 }}
data:
  tls.crt: {{ .crt | b64enc }}
  tls.key: {{ .key | b64enc }}
{{- end }}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: linkerd-proxy-injector-webhook-config
  labels:
    {{- include "wisp.labels" .root | nindent 4 }}
webhooks:
  - name: linkerd-proxy-injector.linkerd.io
    namespaceSelector:
      {{- toYaml $p.namespaceSelector | nindent 6 }}
    objectSelector:
      {{- toYaml $p.objectSelector | nindent 6 }}
    clientConfig:
      service:
        name: linkerd-proxy-injector
        namespace: {{ $ns }}
        path: "/"
      caBundle: {{ .ca | b64enc }}
    failurePolicy: {{ $p.failurePolicy }}
    admissionReviewVersions: ["v1", "v1beta1"]
    rules:
      - operations: ["CREATE"]
        apiGroups: [""]
        apiVersions: ["v1"]
        resources: ["pods", "services"]
        scope: Namespaced
    sideEffects: None
    timeoutSeconds: {{ $p.timeoutSeconds }}
{{- end -}}
