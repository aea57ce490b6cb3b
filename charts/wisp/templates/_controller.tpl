{{/*
A controller Deployment (dict root, role). role "all" runs every role in
`wisp-controller`; "destination", "identity" or "proxy-injector" runs one
role in `wisp-<role>`.
*/}}
{{- define "wisp.deployment" -}}
{{- $root := .root -}}
{{- $v := .root.Values -}}
{{- $ns := include "wisp.namespace" .root -}}
{{- $all := eq .role "all" -}}
{{- $dst := or $all (eq .role "destination") -}}
{{- $id := or $all (eq .role "identity") -}}
{{- $inj := or $all (eq .role "proxy-injector") -}}
{{- $name := ternary "wisp-controller" (printf "wisp-%s" .role) $all -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $ns }}
  labels:
    {{- include "wisp.labels" $root | nindent 4 }}
    linkerd.io/control-plane-component: {{ include "wisp.component" . }}
spec:
  replicas: {{ $v.controller.replicas }}
  selector:
    matchLabels:
      {{- include "wisp.selector" . | nindent 6 }}
  {{- if gt (int $v.controller.replicas) 1 }}
  strategy:
    rollingUpdate:
      maxUnavailable: 1
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "wisp.labels" $root | nindent 8 }}
        linkerd.io/control-plane-component: {{ include "wisp.component" . }}
        {{- with $v.controller.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        linkerd.io/inject: disabled
        {{- with $v.controller.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "wisp.serviceAccount" . }}
      automountServiceAccountToken: true
      {{- with $v.controller.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $v.controller.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.controller.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $v.controller.podAntiAffinity }}
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - labelSelector:
                matchLabels:
                  {{- include "wisp.selector" . | nindent 18 }}
              topologyKey: kubernetes.io/hostname
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                labelSelector:
                  matchLabels:
                    {{- include "wisp.selector" . | nindent 20 }}
                topologyKey: topology.kubernetes.io/zone
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: {{ $v.controller.uid }}
        runAsGroup: {{ $v.controller.uid }}
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: controller
          image: {{ printf "%s:%s" $v.controller.image.name (default $root.Chart.AppVersion $v.controller.image.version) | quote }}
          imagePullPolicy: {{ $v.controller.image.pullPolicy }}
          command: ["/usr/local/bin/wisp", "controller"]
          args:
            - --source=kube
            - {{ printf "--control-plane-ns=%s" $ns | quote }}
            - {{ printf "--cluster-domain=%s" $v.clusterDomain | quote }}
            - {{ printf "--trust-domain=%s" (include "wisp.trustDomain" $root) | quote }}
            - {{ printf "--cluster-networks=%s" $v.clusterNetworks | quote }}
            - {{ printf "--default-inbound-policy=%s" $v.proxy.defaultInboundPolicy | quote }}
            - --admin-addr=0.0.0.0:9990
            - {{ printf "--issuer-secret=%s" (include "wisp.issuerSecret" $root) | quote }}
            - --trust-roots-configmap=linkerd-identity-trust-roots
            {{- if $dst }}
            - --destination-addr=0.0.0.0:8086
            {{- else }}
            - --disable-destination
            {{- end }}
            {{- if $id }}
            - --identity-addr=0.0.0.0:8080
            - {{ printf "--identity-issuance-lifetime=%s" $v.identity.issuanceLifetime | quote }}
            - {{ printf "--identity-clock-skew-allowance=%s" $v.identity.clockSkewAllowance | quote }}
            {{- else }}
            - --disable-identity
            {{- end }}
            {{- if $inj }}
            - --injector-addr=0.0.0.0:8443
            - --injector-tls-dir=/var/run/wisp/injector/tls
            - --injector-config=/var/run/wisp/config/inject.yaml
            {{- else }}
            - --disable-injector
            {{- end }}
          env:
            - name: WISP_LOG
              value: {{ $v.controller.logLevel | quote }}
          ports:
            - name: admin-http
              containerPort: 9990
            {{- if $dst }}
            - name: grpc-dst
              containerPort: 8086
            {{- end }}
            {{- if $id }}
            - name: grpc-identity
              containerPort: 8080
            {{- end }}
            {{- if $inj }}
            - name: webhook
              containerPort: 8443
            {{- end }}
          readinessProbe:
            httpGet:
              path: /ready
              port: 9990
            failureThreshold: 7
            periodSeconds: 10
          livenessProbe:
            httpGet:
              path: /live
              port: 9990
            initialDelaySeconds: 10
            periodSeconds: 10
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities:
              drop: ["ALL"]
          {{- with $v.controller.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- if $inj }}
          volumeMounts:
            - name: injector-tls
              mountPath: /var/run/wisp/injector/tls
              readOnly: true
            - name: config
              mountPath: /var/run/wisp/config
              readOnly: true
          {{- end }}
      {{- if $inj }}
      volumes:
        - name: injector-tls
          secret:
            secretName: {{ include "wisp.injectorSecret" $root }}
        - name: config
          configMap:
            name: wisp-config
      {{- end }}
{{- end -}}

{{/* The PodDisruptionBudget of a controller Deployment (dict root, role). */}}
{{- define "wisp.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ ternary "wisp-controller" (printf "wisp-%s" .role) (eq .role "all") }}
  namespace: {{ include "wisp.namespace" .root }}
  labels:
    {{- include "wisp.labels" .root | nindent 4 }}
    linkerd.io/control-plane-component: {{ include "wisp.component" . }}
spec:
  maxUnavailable: {{ .root.Values.controller.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "wisp.selector" . | nindent 6 }}
{{- end -}}
