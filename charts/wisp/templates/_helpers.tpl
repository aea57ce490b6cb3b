{{/*
Named templates shared by the chart's manifests. `wisp install` renders
them with its own Go-template engine: keep to if/else, with, range over
lists, define/include, variables declared once, and the functions listed
in the chart README.
*/}}

{{/* The control-plane namespace. */}}
{{- define "wisp.namespace" -}}
{{- default .Release.Namespace .Values.controlPlaneNamespace -}}
{{- end -}}

{{/* The trust domain: identityTrustDomain, else the cluster domain. */}}
{{- define "wisp.trustDomain" -}}
{{- default .Values.clusterDomain .Values.identityTrustDomain -}}
{{- end -}}

{{/* Name of the issuer Secret the controller reads. */}}
{{- define "wisp.issuerSecret" -}}
{{- default "linkerd-identity-issuer" .Values.identity.issuer.existingSecret -}}
{{- end -}}

{{/* Name of the Secret holding the injector's serving certificate. */}}
{{- define "wisp.injectorSecret" -}}
{{- default "wisp-proxy-injector-k8s-tls" .Values.proxyInjector.existingSecret -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "wisp.labels" -}}
app.kubernetes.io/name: wisp
app.kubernetes.io/part-of: wisp
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
linkerd.io/control-plane-ns: {{ include "wisp.namespace" . }}
{{- end -}}

{{/* Pod label of a role (dict root, role): `controller` when one Deployment runs all roles. */}}
{{- define "wisp.component" -}}
{{- ternary .role "controller" .root.Values.controller.splitRoles -}}
{{- end -}}

{{/* ServiceAccount of a role (dict root, role). */}}
{{- define "wisp.serviceAccount" -}}
{{- ternary (printf "linkerd-%s" .role) "wisp-controller" .root.Values.controller.splitRoles -}}
{{- end -}}

{{/* Selector labels of a role's pods (dict root, role). */}}
{{- define "wisp.selector" -}}
linkerd.io/control-plane-component: {{ include "wisp.component" . }}
linkerd.io/control-plane-ns: {{ include "wisp.namespace" .root }}
{{- end -}}

{{/* A control-plane Service (dict root, name, role, port, target, portName, headless). */}}
{{- define "wisp.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  namespace: {{ include "wisp.namespace" .root }}
  labels:
    {{- include "wisp.labels" .root | nindent 4 }}
    linkerd.io/control-plane-component: {{ include "wisp.component" . }}
spec:
  type: ClusterIP
  {{- if .headless }}
  clusterIP: None
  {{- end }}
  selector:
    {{- include "wisp.selector" . | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ .port }}
      targetPort: {{ .target }}
{{- end -}}
