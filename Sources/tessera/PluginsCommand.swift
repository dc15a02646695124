// tessera plugins: loaded plugins, their executors and parameters.

import ArgumentParser
import TesseraProtocol

struct Plugins: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List plugins, executors and their parameters.")
    @OptionGroup var options: GlobalOptions

    func run() throws {
        let plugins = try options.call("ListPlugins")["plugins"]?.arrayValue ?? []
        if options.json { return printJSON(.array(plugins)) }
        for (i, plugin) in plugins.enumerated() {
            if i > 0 { print("") }
            print(
                "\(plugin["name"]?.stringValue ?? "?") \(plugin["version"]?.stringValue ?? "")  \(plugin["path"]?.stringValue ?? "")"
            )
            for executor in plugin["executors"]?.arrayValue ?? [] {
                print(
                    "  executor \(executor["name"]?.stringValue ?? "?"): \(executor["description"]?.stringValue ?? "")")
                let rows = (executor["params"]?.arrayValue ?? []).map { p in
                    [
                        "    " + (p["name"]?.stringValue ?? ""), p["type"]?.stringValue ?? "",
                        p["required"]?.boolValue == true
                            ? "required" : "default: " + (p["default"]?.stringValue ?? "none"),
                        p["description"]?.stringValue ?? "",
                    ]
                }
                if !rows.isEmpty { printTable(["    PARAMETER", "TYPE", "REQUIRED", "DESCRIPTION"], rows) }
            }
        }
    }
}
