/*
 * GigaOffice plugin: what it asks of the spreadsheet editor, as promises. Each command is handed to
 * Asc.plugin.callCommand, which runs it in the editor's own context (where the spreadsheet `Api`
 * lives) as source text: a command sees nothing of this file but Asc.scope, so everything it needs
 * travels there.
 */
(function (root) {
  "use strict";

  function plugin() {
    return root.Asc.plugin;
  }

  /** Runs `command` in the editor; resolves with what it returns. `recalc`: recalculate after it. */
  function run(command, scope, recalc) {
    return new Promise(function (resolve, reject) {
      root.Asc.scope = scope || {};
      const timer = setTimeout(function () { reject(new Error("The editor did not answer.")); }, 15000);
      try {
        plugin().callCommand(command, false, !!recalc, function (value) {
          clearTimeout(timer);
          resolve(value);
        });
      } catch (err) {
        clearTimeout(timer);
        reject(err);
      }
    });
  }

  function method(name, args) {
    return new Promise(function (resolve) {
      plugin().executeMethod(name, args || [], resolve);
    });
  }

  const Editor = {
    /** {address, sheet, values} of the current selection. */
    selection() {
      return run(function () {
        var range = Api.GetSelection();
        return {
          address: range.GetAddress(false, false, "xlA1", false),
          sheet: Api.GetActiveSheet().GetName(),
          values: range.GetValue(),
        };
      });
    },

    read(address) {
      return run(function () {
        return Api.GetActiveSheet().GetRange(Asc.scope.address).GetValue();
      }, { address: address });
    },

    write(address, values) {
      return run(function () {
        Api.GetActiveSheet().GetRange(Asc.scope.address).SetValue(Asc.scope.values);
        return true;
      }, { address: address, values: values }, true);
    },

    /** A chart from GigaCore.chartPlan (its series written first when they came as numbers). */
    chart(plan) {
      return run(function () {
        var sheet = Api.GetActiveSheet();
        var p = Asc.scope.plan;
        if (p.write) sheet.GetRange(p.write.range).SetValue(p.write.values);
        var ref = "'" + sheet.GetName().replace(/'/g, "''") + "'!" + p.absoluteRange;
        // Size in EMU (36 000 per mm): 120 × 70 mm, anchored right of the data.
        var chart = sheet.AddChart(ref, false, p.type, 2, 120 * 36000, 70 * 36000, p.anchor.column, 0, p.anchor.row, 0);
        if (!chart) return false;
        if (p.title) chart.SetTitle(p.title, 13);
        chart.SetLegendPos(p.legend ? "right" : "none");
        return true;
      }, { plan: plan }, true);
    },

    /** The cell functions read the service's address and key from the editor's context, where they
     * run: held in memory there for this session, never written into the document. */
    configureFunctions(settings) {
      return run(function () {
        (typeof globalThis !== "undefined" ? globalThis : window).GigaOfficeSettings = Asc.scope.settings;
        return true;
      }, { settings: settings });
    },

    /** Adds (or updates) our entry in the document's library of custom functions. */
    async registerFunctions(entry) {
      let library = { macrosArray: [], current: -1 };
      const stored = await method("GetCustomFunctions");
      if (stored) {
        try { library = JSON.parse(stored); } catch (err) { library = { macrosArray: [], current: -1 }; }
      }
      library.macrosArray = (library.macrosArray || []).filter(function (item) { return item.guid !== entry.guid; });
      library.macrosArray.push(entry);
      await method("SetCustomFunctions", [JSON.stringify(library)]);
    },
  };

  root.GigaEditor = Editor;
})(typeof globalThis !== "undefined" ? globalThis : this);
