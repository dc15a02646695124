// ConfigLoader.swift
//
// Why this file exists: it is the module's front door. The daemon loads its
// configuration and its job directories through it, the CLI converts
// `--param` values through it; each call returns typed values or every
// diagnostic found.

/// Loads and checks the server configuration and job files.
public enum ConfigLoader {
    /// Reads and decodes the server configuration at `path`. Diagnostics name
    /// the file as `path` is written.
    public static func loadServerConfig(path: String) -> Result<ServerConfig, DiagnosticList> {
        let bytes: [UInt8]
        do {
            bytes = try POSIX.readFile(path)
        } catch {
            return .failure(DiagnosticList([unreadable(path, error)]))
        }
        return decodeServerConfig(bytes: bytes, file: path)
    }

    /// Decodes server configuration text; `file` names it in diagnostics.
    public static func parseServerConfig(text: String, file: String) -> Result<ServerConfig, DiagnosticList> {
        decodeServerConfig(bytes: Array(text.utf8), file: file)
    }

    /// Decodes and checks one job file's text against the executors of
    /// `catalog`; `file` names it in diagnostics and in the job.
    public static func parseJob(
        text: String, file: String, catalog: ExecutorCatalog
    ) -> Result<JobDefinition, DiagnosticList> {
        decodeJob(bytes: Array(text.utf8), file: file, catalog: catalog)
    }

    /// Loads every `*.yaml` and `*.yml` file of `directories` (in the order
    /// given, each directory's files sorted by name, hidden files skipped).
    /// A file with problems is skipped and its diagnostics collected, as are
    /// directories that cannot be listed. A job whose name an earlier file
    /// already took is skipped with a diagnostic at its `name`. File names in
    /// diagnostics and jobs are `directory/name`.
    public static func loadJobs(
        directories: [String], catalog: ExecutorCatalog
    ) -> (jobs: [JobDefinition], diagnostics: [Diagnostic]) {
        var jobs: [JobDefinition] = []
        var diagnostics: [Diagnostic] = []
        for directory in directories {
            let names: [String]
            do {
                names = try POSIX.directoryEntries(directory)
            } catch {
                diagnostics.append(
                    Diagnostic(file: directory, position: nil, message: "cannot list the directory: \(error.reason)"))
                continue
            }
            let jobFiles = names.filter { !$0.hasPrefix(".") && ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) }
                .sorted()
            for name in jobFiles {
                let file = directory.hasSuffix("/") ? directory + name : "\(directory)/\(name)"
                let bytes: [UInt8]
                do {
                    bytes = try POSIX.readFile(file)
                } catch {
                    diagnostics.append(unreadable(file, error))
                    continue
                }
                switch decodeJob(bytes: bytes, file: file, catalog: catalog) {
                case .failure(let list):
                    diagnostics += list.diagnostics
                case .success(let job):
                    if let first = jobs.first(where: { $0.name == job.name }) {
                        let message =
                            "duplicate job name \(quoted(job.name)) (first given at \(first.file):\(first.nameMark))"
                        diagnostics.append(
                            Diagnostic(file: file, position: job.nameMark, path: "name", message: message))
                    } else {
                        jobs.append(job)
                    }
                }
            }
        }
        return (jobs, diagnostics)
    }

    /// Converts the text of `tessera run --param name=value` to a parameter of
    /// `type`, or nil when the text is not of that type. The same syntax
    /// writes the defaults that plugins declare.
    ///
    /// - `string`: the text as it is.
    /// - `integer`: a decimal integer, optionally signed, e.g. `-42`.
    /// - `number`: a decimal number, e.g. `1.5`, `-2` or `1e3` (not `inf` or `nan`).
    /// - `boolean`: `true` or `false`.
    /// - `string_list`: items separated by commas, kept verbatim (no
    ///   trimming, no escapes, so an item cannot hold a comma): `sh,-c,echo hi`
    ///   is three items; the empty text is the empty list.
    /// - `string_map`: `key=value` pairs separated by commas, split at each
    ///   pair's first `=`: `LANG=C,TZ=UTC`. A pair without `=`, an empty key
    ///   or a repeated key makes the text invalid; the empty text is the empty map.
    public static func convertRunParam(_ text: String, to type: ParamType) -> ParamValue? {
        ParamValue(text: text, type: type)
    }

    // MARK: Internals

    private static func decodeServerConfig(bytes: [UInt8], file: String) -> Result<ServerConfig, DiagnosticList> {
        let diagnostics = DiagnosticCollector(file: file)
        return YAMLNode.parse(bytes: bytes, file: file).flatMap { root in
            guard let config = ServerConfig.decode(root, diagnostics: diagnostics) else {
                return .failure(DiagnosticList(diagnostics.diagnostics.inFileOrder()))
            }
            return .success(config)
        }
    }

    private static func decodeJob(
        bytes: [UInt8], file: String, catalog: ExecutorCatalog
    ) -> Result<JobDefinition, DiagnosticList> {
        let diagnostics = DiagnosticCollector(file: file)
        return YAMLNode.parse(bytes: bytes, file: file).flatMap { root in
            guard let job = JobDecoder(catalog: catalog, diagnostics: diagnostics).decode(root) else {
                return .failure(DiagnosticList(diagnostics.diagnostics.inFileOrder()))
            }
            return .success(job)
        }
    }

    private static func unreadable(_ file: String, _ error: POSIXError) -> Diagnostic {
        Diagnostic(file: file, position: nil, message: "cannot read the file: \(error.reason)")
    }
}
